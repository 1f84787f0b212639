// Write rules that can never allow a write are warnings (exit 0): Min/Max on holding
// addresses no configured point covers, and limits no value of an integer point can meet.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { DeviceConfig, PointConfig } from '../../src/config/types.js';
import { manifestFor } from '../../src/firewall/config-coverage.js';
import { writeRuleWarnings } from '../../src/firewall/write-warnings.js';
import { runCli } from '../fixtures/cli.js';
import { tmpDir } from '../fixtures/ports.js';

const points = [
  { name: 'speed', table: 'holding', address: 10, type: 'uint16' },
  { name: 'total', table: 'holding', address: 20, type: 'uint32', scale: 0.5 },
];

t.test('check-config warns of limits that allow nothing, and still says OK', async (t) => {
  const dir = await tmpDir(t, 'guardian-limits-');
  const doc = {
    version: 1,
    gateway: { id: 'gw-limits', stateDir: path.join(dir, 'state') },
    firewall: { manifest: path.join(dir, 'app_manifest.json') },
    upstream: { mqtt: { url: 'mqtt://127.0.0.1:18838' } },
    buses: [{ name: 'plc', type: 'tcp', host: '127.0.0.1', port: 15028, devices: [{ name: 'press', unitId: 1, points }] }],
  };
  const file = path.join(dir, 'guardian.yaml');
  writeFileSync(file, stringify(doc));
  const allow = [
    { Table: 'holding', Addresses: 10, Min: 0.5, Max: 0.7 },
    { Table: 'holding', Addresses: [20, 21], Min: 0.25, Max: 0.3 },
    { Table: 'holding', Addresses: [30, 32], Min: 0, Max: 10 },
    { Table: 'holding', Addresses: [11, 12], Min: 0, Max: 100 },
    { Table: 'holding', Addresses: [40, 41] },
  ];
  const manifest = { ...manifestFor(parseConfig(stringify(doc), file)), Guardian: { WritePolicy: { Devices: { press: { Allow: allow } } } } };
  writeFileSync(path.join(dir, 'app_manifest.json'), JSON.stringify(manifest, null, 2));
  const res = await runCli(['check-config', file]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /: OK \(/);
  const base = 'warning: Guardian.WritePolicy.Devices.press.Allow';
  t.same(res.stderr.trimEnd().split('\n'), [
    `${base}[0] (holding 10, Min 0.5, Max 0.7): no value of point 'speed' (uint16, scale 1, offset 0) lies within the limits, so every write to it is refused`,
    `${base}[1] (holding 20-21, Min 0.25, Max 0.3): no value of point 'total' (uint32, scale 0.5, offset 0) lies within the limits, so every write to it is refused`,
    `${base}[2] (holding 30-32, Min 0, Max 10): no configured point of device 'press' covers holding 30-32; a limit needs a point to judge the value, so every write there is refused`,
    `${base}[3] (holding 11-12, Min 0, Max 100): no configured point of device 'press' covers holding 11-12; a limit needs a point to judge the value, so every write there is refused`,
  ], 'one line per rule that can never allow a write; a rule without limits is not one');
});

function point(over: Partial<PointConfig>): PointConfig {
  return { name: 'p', table: 'holding', address: 0, type: 'uint16', length: 1, byteOrder: 'big', wordOrder: 'big', scale: 1, offset: 0, deadband: 0, reportOnChange: false, ...over };
}

t.test('an integer point\'s limits warn exactly when no raw value meets them (brute force over int16/uint16, fast-check)', async (t) => {
  const seed = Date.now() % 2 ** 31;
  const quarter = fc.integer({ min: -400, max: 400 }).map((n) => n / 4);
  let warned = 0;
  fc.assert(fc.property(fc.constantFrom<'int16' | 'uint16'>('int16', 'uint16'), fc.constantFrom(1, 2, -3, 0.5, 0.25, -0.5), fc.integer({ min: -50, max: 50 }), quarter, quarter, (type, scale, offset, a, b) => {
    const [min, max] = a <= b ? [a, b] : [b, a];
    const p = point({ type, scale, offset });
    const device: DeviceConfig = { name: 'd', unitId: 1, points: [p] } as unknown as DeviceConfig;
    const got = writeRuleWarnings(device, { allow: [{ table: 'holding', from: 0, to: 0, min, max, verify: true }] }).length > 0;
    let possible = false;
    const [lo, hi] = type === 'int16' ? [-32768, 32767] : [0, 65535];
    for (let raw = lo; raw <= hi && !possible; raw++) possible = raw * scale + offset >= min && raw * scale + offset <= max;
    if (got === possible) throw new Error(`seed ${seed}: ${type} scale ${scale} offset ${offset} [${min}, ${max}]: warned ${got}, a value exists ${possible}`);
    if (got) warned++;
  }), { seed, numRuns: 200 });
  t.ok(warned > 0, `some cases warned (seed ${seed})`);
});
