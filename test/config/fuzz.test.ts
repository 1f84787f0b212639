// Whatever the config holds, the loader answers with its own codes, and a config it accepts
// never makes the firewall's `new URL` (brokerEndpoint) throw: it reads the same host and port.
import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { hasCode } from '../../src/core/errors.js';
import { parseBrokerUrl } from '../../src/core/endpoint.js';
import { brokerEndpoint, configEndpoints } from '../../src/firewall/config-coverage.js';
import { jsonErrorOffset } from '../../src/core/json-position.js';
import { baseDoc, docPaths, mutatedText, setAt, urlArb } from '../fixtures/config-mutations.js';

const seed = Number.parseInt(process.env['FC_SEED'] ?? String(Date.now() % 1_000_000), 10);
const rerun = `seed ${seed} (rerun with FC_SEED=${seed})`;

/** parseConfig's outcome: the config, or the code of the error it threw (anything else is rethrown). */
function outcome(text: string, source: string): { code: string } | { url: string; config: ReturnType<typeof parseConfig> } {
  try {
    const config = parseConfig(text, source);
    return { url: config.upstream.mqtt.url, config };
  } catch (err) {
    if (hasCode(err, 'GUARDIAN_E_CONFIG_INVALID') || hasCode(err, 'GUARDIAN_E_CONFIG_PARSE')) return { code: err.code };
    throw err;
  }
}

t.test('any broker URL: refused with a reason, or accepted and read alike by new URL (brokerEndpoint)', async (t) => {
  const property = fc.property(urlArb, (url) => {
    const doc = baseDoc();
    setAt(doc, ['upstream', 'mqtt', 'url'], url);
    if (/^(mqtts|tls|ssl):/.test(url)) setAt(doc, ['upstream', 'mqtt', 'tls'], { ca: '/ca.pem' });
    const res = outcome(stringify(doc), 'fuzz.yaml');
    if ('code' in res) return res.code === 'GUARDIAN_E_CONFIG_INVALID';
    const parsed = parseBrokerUrl(url);
    const endpoint = brokerEndpoint(res.url); // throws on what new URL refuses
    return parsed.ok && endpoint.host === parsed.value.host && endpoint.port === parsed.value.port && configEndpoints(res.config).length === 3;
  });
  t.doesNotThrow(() => fc.assert(property, { seed, numRuns: 3000 }), rerun);
});

t.test('any mutation of a valid config (types, ranges, missing and unknown keys, ${…}, unicode, broken syntax): a CONFIG code, never another error', async (t) => {
  const paths = docPaths(baseDoc());
  const property = fc.property(mutatedText(paths), ({ text, file }) => {
    const res = outcome(text, file);
    if ('code' in res) return true;
    brokerEndpoint(res.url);
    configEndpoints(res.config);
    return true;
  });
  t.doesNotThrow(() => fc.assert(property, { seed, numRuns: 2000 }), rerun);
});

t.test('jsonErrorOffset agrees with JSON.parse wherever Node states the position', async (t) => {
  const property = fc.property(fc.json(), fc.nat(), fc.constantFrom(',', '}', ']', '"', ':', 'x', ' ', '\\', '\n'), (json, at, insert) => {
    const i = at % (json.length + 1);
    const text = `${json.slice(0, i)}${insert}${json.slice(i)}`;
    try {
      JSON.parse(text);
      return true;
    } catch (err) {
      const stated = /at position (\d+)/.exec((err as Error).message)?.[1];
      return stated === undefined || Number(stated) === jsonErrorOffset(text);
    }
  });
  t.doesNotThrow(() => fc.assert(property, { seed, numRuns: 2000 }), rerun);
});
