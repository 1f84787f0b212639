/**
 * What each command takes: its options, arguments, one-line description and
 * example. `guardian <command> --help`, the overview and the option checks
 * (args.ts) all come from this table, and a test holds the README's "## CLI"
 * section to it.
 */
import { DEFAULT_CONFIG_PATH } from '../config/error.js';
import { DEFAULT_MANIFEST_PATH } from '../firewall/manifest.js';
import type { CommandSpec } from './args.js';

const CONFIG_ARG = { name: 'FILE', help: `the config file (default ${DEFAULT_CONFIG_PATH}); the same as --config FILE`, option: 'config' } as const;
const IDENTITY_CONFIG = { config: `the config whose identity section and state directory are used (default ${DEFAULT_CONFIG_PATH})` } as const;

export const COMMAND_SPECS: readonly CommandSpec[] = [
  {
    path: 'run', summary: 'run the gateway',
    options: ['config', 'allow-preload', 'log-format'], positionals: [CONFIG_ARG],
    optionHelp: { config: `the config file (default ${DEFAULT_CONFIG_PATH})` },
    details: [
      'It refuses code preloaded before its firewall (--import, --require, NODE_OPTIONS) unless --allow-preload is given.',
      'SIGTERM or SIGINT stops it: polling stops, in-flight publishes finish and the outbox is flushed while the',
      'broker is reachable (gateway.shutdownTimeoutMs). A second signal exits at once (1).',
      'Exit codes: 0 stopped with everything sent; 3 stopped, but messages stayed in the outbox (they are sent at',
      'the next start); 4 the stop did not finish in time (the component is logged); 1 failed; 2 usage error.',
    ],
    examples: [`guardian run --config ${DEFAULT_CONFIG_PATH}`],
  },
  {
    path: 'check-config', summary: 'validate a config, the files it names (as the service\'s user) and its keys; OK means `run` starts',
    options: ['config', 'as-user', 'allow-preload'], positionals: [CONFIG_ARG],
    optionHelp: { 'allow-preload': 'check for `run --allow-preload`: no warning about code preloaded through NODE_OPTIONS or --import' },
    examples: ['guardian check-config /etc/guardian/guardian.yaml'],
  },
  {
    path: 'check-manifest', summary: 'validate an app_manifest.json and print what it allows',
    options: ['manifest'], positionals: [{ name: 'FILE', help: `the manifest (default ${DEFAULT_MANIFEST_PATH}); the same as --manifest FILE`, option: 'manifest' }],
    examples: ['guardian check-manifest /etc/guardian/app_manifest.json'],
  },
  {
    path: 'firewall render', summary: 'print the OS firewall the manifest allows: the nftables ruleset or the systemd drop-in',
    options: ['nftables', 'systemd', 'manifest', 'user', 'cgroup', 'allow-unresolved'],
    optionHelp: { manifest: `the app_manifest.json (default ${DEFAULT_MANIFEST_PATH})` },
    exactlyOne: [['nftables', 'systemd']], atMostOne: [['user', 'cgroup']], needs: { user: 'nftables', cgroup: 'nftables' },
    details: [
      'Host names in the manifest are resolved now; one that does not resolve is an error',
      '(GUARDIAN_E_FIREWALL_UNRESOLVED) unless --allow-unresolved is given.',
    ],
    examples: ['guardian firewall render --systemd > /etc/systemd/system/guardian.service.d/firewall.conf', 'guardian firewall render --nftables --cgroup system.slice/guardian.service'],
  },
  {
    path: 'firewall apply', summary: 'load the nftables ruleset the manifest allows (root); --watch keeps its host-name sets current',
    options: ['manifest', 'user', 'cgroup', 'watch', 'interval', 'allow-unresolved'],
    optionHelp: { manifest: `the app_manifest.json (default ${DEFAULT_MANIFEST_PATH})` },
    atMostOne: [['user', 'cgroup']], needs: { interval: 'watch' },
    details: [
      'A host name that does not resolve at the start is an error (GUARDIAN_E_FIREWALL_UNRESOLVED) unless',
      '--allow-unresolved is given; with --watch, a name that stops resolving later keeps its previous addresses.',
    ],
    examples: ['guardian firewall apply --watch --interval 60'],
  },
  {
    path: 'firewall init', summary: 'print a manifest that allows what the config uses',
    options: ['config'], positionals: [CONFIG_ARG],
    examples: ['guardian firewall init --config /etc/guardian/guardian.yaml > /etc/guardian/app_manifest.json'],
  },
  {
    path: 'identity init', summary: 'provision the key store (TPM, or the simulated Pluton store) and the device keys',
    options: ['config'], optionHelp: IDENTITY_CONFIG,
    examples: ['sudo guardian identity init --config /etc/guardian/guardian.yaml'],
  },
  {
    path: 'identity show', summary: 'device id, backend, public keys, fingerprints, certificates',
    options: ['config', 'json'], optionHelp: IDENTITY_CONFIG,
    examples: ['guardian identity show --json'],
  },
  {
    path: 'identity csr', summary: 'print a PKCS#10 certificate request signed by a device key',
    options: ['config', 'subject', 'key'], optionHelp: IDENTITY_CONFIG, required: ['subject'],
    examples: ['guardian identity csr --subject "CN=gw-7, O=Plant 7" --key tls > gw-7.csr'],
  },
  {
    path: 'identity install-cert', summary: 'store the certificate issued for the identity or TLS key (checked against it)',
    options: ['config'], optionHelp: IDENTITY_CONFIG, positionals: [{ name: 'FILE', help: 'the PEM certificate the CA issued', required: true }],
    examples: ['guardian identity install-cert gw-7.crt'],
  },
  {
    path: 'identity import-sas-key', summary: 'read the IoT Hub symmetric key (base64) from stdin into the key store',
    options: ['config'], optionHelp: IDENTITY_CONFIG,
    examples: ['guardian identity import-sas-key < primary-key.txt'],
  },
  {
    path: 'identity attest', summary: "a TPM quote over the PCRs with the verifier's nonce, the EK and its certificate",
    options: ['config', 'nonce', 'pcrs', 'out'], optionHelp: IDENTITY_CONFIG, required: ['nonce'],
    examples: ['guardian identity attest --nonce 9f86d081884c7d65 --out /tmp/quote'],
  },
  {
    path: 'identity activate-credential', summary: "decrypt a verifier's tpm2_makecredential challenge (binds the AK to the EK)",
    options: ['config'], optionHelp: IDENTITY_CONFIG, positionals: [{ name: 'FILE', help: 'the credential (tpm2_makecredential -o)', required: true }],
    examples: ['guardian identity activate-credential cred.bin'],
  },
  {
    path: 'plan', summary: 'print the Modbus request plan (register coalescing)',
    options: ['config'], positionals: [CONFIG_ARG],
    examples: ['guardian plan --config /etc/guardian/guardian.yaml'],
  },
  {
    path: 'status', summary: 'outbox depth and drops, failure reports waiting (works while the gateway runs)',
    options: ['config', 'json'], positionals: [CONFIG_ARG],
    examples: ['guardian status --json'],
  },
  {
    path: 'demo', summary: 'run the demo: a simulated Modbus device and an embedded MQTT broker, no config',
    options: ['port', 'allow-preload', 'log-format'],
    examples: ['guardian demo --port 18830'],
  },
  {
    path: 'watch', summary: 'print the messages on a topic filter from a broker (default the demo\'s)',
    options: ['url', 'topic'],
    examples: ['guardian watch --url mqtt://127.0.0.1:1883 --topic "guardian/+/+/telemetry"'],
  },
  {
    path: 'help', summary: 'print the overview, or the usage of one command',
    options: [], positionals: [{ name: 'COMMAND', help: 'a command, or a group and its subcommand (firewall render)' }, { name: 'SUBCOMMAND', help: 'a subcommand of the group' }],
    examples: ['guardian help firewall render'],
  },
  {
    path: 'version', summary: 'print the version (also --version, -v)',
    options: [],
    examples: ['guardian --version'],
  },
];

/** The command groups: `guardian firewall …`, `guardian identity …`. */
export const GROUPS: ReadonlyMap<string, string> = new Map([
  ['firewall', 'the OS firewall from the manifest: render it, apply it, or make a manifest from the config'],
  ['identity', 'the device identity: keys in the TPM or the simulated Pluton store, certificates, attestation'],
]);

const BY_PATH = new Map(COMMAND_SPECS.map((s) => [s.path, s]));

export function commandSpec(path: string): CommandSpec | undefined {
  return BY_PATH.get(path);
}

/** The subcommands of a group, in table order. */
export function subcommands(group: string): CommandSpec[] {
  return COMMAND_SPECS.filter((s) => s.path.startsWith(`${group} `));
}

/** Every top-level word: commands and groups. */
export function topLevelNames(): string[] {
  return [...new Set(COMMAND_SPECS.map((s) => s.path.split(' ')[0] ?? s.path))];
}
