/**
 * The one registry of user-visible error codes. Codes are stable and never
 * reused; each is documented in README.md (a test checks both properties).
 * Decide by code (`isTransient`, `hasCode`), never by message text.
 */

interface ErrorSpec {
  /** What happened and what to do about it. */
  readonly hint: string;
  /** True when retrying the same operation later may succeed. */
  readonly transient: boolean;
}

export const ErrorCodes = {
  GUARDIAN_E_USAGE: { hint: 'The command line is wrong; run `guardian help`.', transient: false },
  GUARDIAN_E_CONFIG_READ: { hint: 'The config file cannot be read; check the path and its permissions.', transient: false },
  GUARDIAN_E_CONFIG_PARSE: { hint: 'The config file is not valid YAML (or, for a .json file, JSON), repeats a key, or is empty; fix it at the line and column shown.', transient: false },
  GUARDIAN_E_CONFIG_INVALID: { hint: 'The config does not match the schema; fix every path listed.', transient: false },
  GUARDIAN_E_MANIFEST_READ: { hint: 'The manifest file cannot be read; check the path and its permissions.', transient: false },
  GUARDIAN_E_MANIFEST_PARSE: { hint: 'The manifest is not valid JSON or repeats a key; fix it at the position shown.', transient: false },
  GUARDIAN_E_MANIFEST_INVALID: { hint: 'The manifest does not match the Azure Sphere shape or Guardian\'s rules; fix every path listed.', transient: false },
  GUARDIAN_E_CONFIG_FILES: { hint: 'A file or directory the config names (TLS CA/cert/key, the manifest, the key store secret, the state directory) is missing, unreadable by the user Guardian runs as, or unsafe; fix each `<config path>: <file>: <why>` line listed.', transient: false },
  GUARDIAN_E_TLS_FILE: { hint: 'A TLS file named in the config cannot be read or does not hold what it must (the CA PEM certificates, the client certificate, an unencrypted private key matching it); check the path, the permissions and the contents.', transient: false },
  GUARDIAN_E_COMPONENT_START: { hint: 'A component failed to start; it is retried with backoff, the others keep running.', transient: true },
  GUARDIAN_E_MODBUS_CONNECT: { hint: 'The Modbus bus cannot be opened (serial port or TCP endpoint); check cabling, the port and the address.', transient: true },
  GUARDIAN_E_MODBUS_TIMEOUT: { hint: 'The Modbus device did not answer in time; check its unit id, wiring and timeout.', transient: true },
  GUARDIAN_E_MODBUS_EXCEPTION: { hint: 'The Modbus device answered with an exception; check the point addresses and tables.', transient: false },
  GUARDIAN_E_MODBUS_FRAME: { hint: 'The Modbus response was malformed (CRC, length or unit id); check for noise or a second master on the line.', transient: true },
  GUARDIAN_E_MODBUS_LINE_BUSY: { hint: 'A request was not sent: the serial line never fell silent for the 3.5 character times Modbus RTU requires before the request timed out. Check for a second master, a babbling device or noise on the line.', transient: true },
  GUARDIAN_E_DEVICE_BACKOFF: { hint: 'The device failed repeatedly and is polled less often until it answers again.', transient: true },
  GUARDIAN_E_DEVICE_RECOVERED: { hint: 'The device answers again; normal polling resumed.', transient: false },
  GUARDIAN_E_DECODE: { hint: 'A register value cannot be decoded as the configured type; check type, byte order and word order.', transient: false },
  GUARDIAN_E_MQTT_CONNECT: { hint: 'The MQTT broker cannot be reached or refused the connection; Guardian retries with backoff.', transient: true },
  GUARDIAN_E_MQTT_DISCONNECTED: { hint: 'The MQTT connection was lost; messages wait in the outbox and Guardian reconnects with backoff.', transient: true },
  GUARDIAN_E_MQTT_PUBLISH: { hint: 'The broker did not acknowledge a publish; it stays in the outbox and is sent again.', transient: true },
  GUARDIAN_E_OUTBOX_DROPPED: { hint: 'The outbox reached its bound (bytes or age) and the oldest messages were dropped; restore the uplink or raise the bound.', transient: false },
  GUARDIAN_E_OUTBOX_FULL: { hint: 'The outbox reached its bound with policy stop-polling: polling is paused until the uplink drains it.', transient: true },
  GUARDIAN_E_OUTBOX_SEQ_SKIPPED: { hint: 'The system restarted without a clean stop (power loss, kernel crash) and the outbox may have lost its last commits: sequence numbers continue above the durable reservation, so no number a consumer saw is reused (a gap, not a loss).', transient: false },
  GUARDIAN_E_OUTBOX_WRITE: { hint: 'The outbox database cannot be written; check the state directory (permissions, file system errors).', transient: true },
  GUARDIAN_E_STATE_DISK_FULL: { hint: 'The state volume is full; readings wait in memory and are committed when space returns. Free space on the state volume.', transient: true },
  GUARDIAN_E_SHUTDOWN_TIMEOUT: { hint: 'Shutdown did not finish in-flight publishes in time; unsent messages are counted in the log.', transient: false },
  GUARDIAN_E_CLOCK_JUMP: { hint: 'The system clock jumped (NTP, RTC, an operator); polling is unaffected but timestamps jump with it. Check time synchronisation.', transient: false },
  GUARDIAN_E_COMMAND_INVALID: { hint: 'The command is malformed (not a JSON object, unknown or missing fields, a value the point cannot hold); fix the request. Nothing was sent to the device.', transient: false },
  GUARDIAN_E_COMMAND_UNKNOWN: { hint: 'The command names a device, point or command that this gateway does not have; check the topic and the config.', transient: false },
  GUARDIAN_E_COMMAND_BUSY: { hint: 'Too many commands are waiting for this device; retry after the earlier ones are answered.', transient: true },
  GUARDIAN_E_COMMAND_EXPIRED: { hint: 'The command\'s ts is older than its max age (commands.maxAgeMs, or the envelope\'s maxAgeMs) or further in the future than commands.maxFutureMs; nothing was run. Send it again with a fresh ts, and check the sender\'s clock.', transient: false },
  GUARDIAN_E_COMMAND_RATE: { hint: 'More read commands for this device in the last minute than commands.maxReadsPerMinute; nothing was read. Retry later or poll the point instead.', transient: true },
  GUARDIAN_E_COMMAND_REPLAYED: { hint: 'This transaction was accepted by an earlier run of the gateway, which stopped before it answered; it is not run again while it could still be fresh. Read the device to see whether the write landed; send a new transaction to write again.', transient: false },
  GUARDIAN_E_COMMAND_REPEAT_FULL: { hint: 'The gateway holds as many remembered transactions as it may (each is kept until its command can no longer be fresh, so a captured command cannot run twice); nothing was run. Retry later, or lower commands.maxAgeMs.', transient: true },
  GUARDIAN_E_WRITE_DENIED: { hint: 'The manifest\'s write policy does not allow this write (device, table, address, value or rate); nothing was sent to the device.', transient: false },
  GUARDIAN_E_WRITE_VERIFY: { hint: 'The device accepted the write but reading it back gave other values (clamped, read-only or self-clearing register); check the device, or set Verify false for that rule.', transient: false },
  GUARDIAN_E_FIREWALL_DENIED: { hint: 'A connection, lookup, listening socket, serial port, thread or process the manifest does not allow was refused; add it to app_manifest.json if it is legitimate.', transient: false },
  GUARDIAN_E_FIREWALL_CONFIG: { hint: 'The config uses an endpoint, port or serial device that the manifest does not allow; add it to app_manifest.json or fix the config.', transient: false },
  GUARDIAN_E_FIREWALL_HOOK: { hint: 'A part of the in-process firewall could not be installed (a serial port addon or process.dlopen that cannot be wrapped, a trusted program named without its absolute path); Guardian fails closed: that path stays shut or the daemon does not start. Reinstall the dependencies; do not preload code.', transient: false },
  GUARDIAN_E_PRELOAD: { hint: '`guardian run` refuses code loaded before its firewall (--import, --require, --loader, --inspect, in the command line or NODE_OPTIONS); remove it, or pass --allow-preload if you accept what the README says it costs.', transient: false },
  GUARDIAN_E_FIREWALL_APPLY: { hint: 'The nftables ruleset could not be loaded; run as root (CAP_NET_ADMIN) with nftables installed, and see the nft message.', transient: true },
  GUARDIAN_E_FIREWALL_UNRESOLVED: { hint: 'A host name in the manifest does not resolve, so its firewall rules would be missing; fix the name or the DNS, or pass --allow-unresolved to render the rules without it.', transient: true },
  GUARDIAN_E_NOT_BUILT: { hint: 'The compiled CLI (dist/) is missing: run `npm run build` (or `npm install`, which builds it) in the Guardian directory. bin/guardian.js never builds on its own.', transient: false },
  GUARDIAN_E_KEYSTORE_MISSING: { hint: 'Something the upstream needs is not provisioned yet: do what the message says (`guardian identity init` for the device keys, `guardian identity import-sas-key` for the SAS key, `guardian identity install-cert` for the TLS certificate).', transient: false },
  GUARDIAN_E_KEYSTORE_AUTH: { hint: 'The key store refused the root authorization: the TPM owner authorization file, or the simulated Pluton device secret, is not the one it was provisioned with.', transient: false },
  GUARDIAN_E_KEYSTORE_CORRUPT: { hint: 'A key store file is damaged or was tampered with and is refused; restore it from backup, or move the identity directory away and run `guardian identity init` again (a new identity needs a new certificate).', transient: false },
  GUARDIAN_E_KEYSTORE_IO: { hint: 'The key store directory cannot be read or written; check the state directory\'s owner and permissions (run identity commands as Guardian\'s user, e.g. `sudo -u guardian guardian identity …`).', transient: false },
  GUARDIAN_E_KEYSTORE_SECRET: { hint: 'A key store secret file (the simulated Pluton device secret, or the TPM owner authorization file) is missing, malformed or readable by others; it must be mode 0600 and owned by the user that runs Guardian.', transient: false },
  GUARDIAN_E_KEYSTORE_INPUT: { hint: 'A key store operation got an invalid argument (key name, digest length, secret size, nonce, PCR selection); fix the call or command line.', transient: false },
  GUARDIAN_E_TPM_UNAVAILABLE: { hint: 'The TPM cannot be reached through the configured TCTI (identity.tpm.tcti), or tpm2-tools is not installed; check /dev/tpmrm0, the tss group and the TCTI string.', transient: true },
  GUARDIAN_E_TPM_TCTI: { hint: 'identity.tpm.tcti names a TCTI whose module tpm2-tools cannot load (libtss2-tcti-NAME.so is not installed, or the name is misspelled); use device:/dev/tpmrm0, swtpm:… or mssim:… and install the module.', transient: false },
  GUARDIAN_E_TPM: { hint: 'The TPM refused a command; the TPM response code (rc) says why. See `tpm2_rc_decode <rc>`.', transient: false },
  GUARDIAN_E_IDENTITY_UNSUPPORTED: { hint: 'This key store backend cannot do that (the simulated Pluton store has no PCRs and cannot attest); use a TPM.', transient: false },
  GUARDIAN_E_IDENTITY_BACKEND: { hint: 'The identity was provisioned with another key store backend than identity.backend names; set it to that backend (or auto). Switching backends means a new identity and a new certificate.', transient: false },
  GUARDIAN_E_IDENTITY_UNSAFE_PATH: { hint: 'A file or directory in the identity state directory is a symbolic link, a FIFO, a device, or a file with several hard links; Guardian never follows or uses such a file (someone who can write the state directory planted it). Remove it, find out who put it there, and run the command again.', transient: false },
  GUARDIAN_E_CERT_INVALID: { hint: 'The certificate file is not a PEM X.509 certificate, or it is not valid now (notBefore/notAfter); check the file the CA issued.', transient: false },
  GUARDIAN_E_CERT_MISMATCH: { hint: 'The certificate is for another public key than this device\'s keys; issue it from the CSR that `guardian identity csr` printed.', transient: false },
  GUARDIAN_E_DEMO_PORT: { hint: 'The demo port is in use; pass --port or set GUARDIAN_DEMO_PORT.', transient: false },
  GUARDIAN_E_INTERNAL: { hint: 'An unexpected internal error; please report it with the log.', transient: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ErrorCodes;

export type ErrorContext = Readonly<Record<string, string | number | boolean | undefined>>;

export class GuardianError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GuardianError';
    this.code = code;
    this.context = context;
  }

  get hint(): string {
    return ErrorCodes[this.code].hint;
  }

  /** A plain object for structured logs (pino serializes `err` through this). */
  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, hint: this.hint, ...this.context };
  }
}

export function hasCode(err: unknown, code: ErrorCode): err is GuardianError {
  return err instanceof GuardianError && err.code === code;
}

export function isTransient(err: unknown): boolean {
  return err instanceof GuardianError && ErrorCodes[err.code].transient;
}

/** Wrap anything thrown into a GuardianError, keeping the original as `cause`. */
export function toGuardianError(err: unknown, fallback: ErrorCode = 'GUARDIAN_E_INTERNAL', context: ErrorContext = {}): GuardianError {
  if (err instanceof GuardianError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new GuardianError(fallback, message, context, { cause: err });
}

/** Codes that mean a bug rather than an operational condition: their logs carry the stack. */
const UNEXPECTED_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['GUARDIAN_E_INTERNAL']);

/**
 * True for an error Guardian anticipates: a GuardianError with an operational code (a refused
 * connection, a timeout, a bad command, a policy refusal). Logs show its code and message without
 * a stack; anything else (a plain Error, GUARDIAN_E_INTERNAL) is logged with its stack.
 */
export function isExpected(err: unknown): boolean {
  return err instanceof GuardianError && !UNEXPECTED_CODES.has(err.code);
}
