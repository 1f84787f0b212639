/**
 * Runs tpm2-tools with the configured TCTI and turns their failures into
 * GUARDIAN_E_… errors that carry the TPM response code. Secrets never go on a
 * command line: they go through stdin, or through an already-unlinked file on
 * a RAM file system handed to the tool as /dev/fd/3 (tpm2_import needs a
 * seekable input).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { GuardianError, type ErrorCode } from '../../core/errors.js';
import { systemBinary } from '../../core/system-bin.js';

/** The tpm2-tools Guardian runs (the in-process firewall trusts exactly these). */
export const TPM_TOOLS = [
  'tpm2_activatecredential', 'tpm2_changeauth', 'tpm2_create', 'tpm2_createek', 'tpm2_createprimary', 'tpm2_evictcontrol', 'tpm2_flushcontext',
  'tpm2_getcap', 'tpm2_hmac', 'tpm2_import', 'tpm2_load', 'tpm2_nvread', 'tpm2_policysecret', 'tpm2_quote', 'tpm2_readpublic', 'tpm2_sign',
  'tpm2_startauthsession', 'tpm2_unseal',
] as const;
export type TpmTool = (typeof TPM_TOOLS)[number];

/** The tool's absolute path in the system directories (never PATH, never a bare name: a missing tool fails with ENOENT). */
export function toolPath(tool: TpmTool): string {
  return systemBinary(tool);
}

export interface RunOptions {
  readonly stdin?: Buffer;
  /** Secret bytes the tool reads from /dev/fd/3. */
  readonly fd3?: Buffer;
}

const TIMEOUT_MS = 30_000;

/** TPM 2.0 response codes (TCG part 2, 6.6) Guardian tells apart; others are GUARDIAN_E_TPM. */
const RC = {
  0x08e: 'GUARDIAN_E_KEYSTORE_AUTH', // TPM_RC_AUTH_FAIL
  0x0a2: 'GUARDIAN_E_KEYSTORE_AUTH', // TPM_RC_BAD_AUTH
  0x921: 'GUARDIAN_E_KEYSTORE_AUTH', // TPM_RC_LOCKOUT
  0x09f: 'GUARDIAN_E_KEYSTORE_CORRUPT', // TPM_RC_INTEGRITY
  0x08b: 'GUARDIAN_E_KEYSTORE_MISSING', // TPM_RC_HANDLE
  0x184: 'GUARDIAN_E_KEYSTORE_MISSING', // TPM_RC_VALUE on a handle
} as const satisfies Record<number, ErrorCode>;

/** The response code without the handle/session/parameter number (format 1) bits. */
export function baseRc(rc: number): number {
  if (rc >>> 16 !== 0) return rc;
  return (rc & 0x80) !== 0 ? 0x80 | (rc & 0x3f) : rc & 0xf7f;
}

export function rcHex(rc: number): string {
  return `0x${rc.toString(16).padStart(3, '0')}`;
}

/** The TPM or TSS response code in a tpm2-tools error output, if any. */
export function parseRc(stderr: string): number | undefined {
  const m = /ERROR: \w+\((0x[0-9A-Fa-f]+)\)/.exec(stderr) ?? /ErrorCode \((0x[0-9A-Fa-f]+)\)/.exec(stderr);
  return m === null ? undefined : Number.parseInt(m[1]!, 16);
}

function lastError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('ERROR: ') && !l.startsWith('ERROR: Unable to run'));
  return (lines.at(-1) ?? stderr.trim().split('\n').at(-1) ?? '').replace(/^ERROR: /, '');
}

/**
 * A TCTI that did not come up, classified once here from tpm2-tools' text (it gives
 * no code): the loader found and ran the module but the module failed ("Could not
 * initialize TCTI file: NAME": its device or socket is not there now, retried), or no
 * module could be loaded at all (a misspelled or not installed TCTI: a config
 * problem, GUARDIAN_E_TPM_TCTI).
 */
function tctiFailure(tool: string, tcti: string, stderr: string, detail: string): GuardianError | undefined {
  if (!/Failed to instantiate TCTI|Could not load tcti/i.test(stderr)) return undefined;
  if (!/Could not initialize TCTI file/i.test(stderr)) {
    const name = tcti.split(':')[0] ?? tcti;
    return new GuardianError('GUARDIAN_E_TPM_TCTI', `identity.tpm.tcti: "${tcti}": tpm2-tools cannot load a TCTI module named '${name}' (libtss2-tcti-${name}.so); use device:/dev/tpmrm0, swtpm:… or mssim:…`, { tool, tcti });
  }
  const device = /Failed to open specified TCTI device file (\S+): No such file or directory/.exec(stderr)?.[1];
  if (device !== undefined) {
    return new GuardianError('GUARDIAN_E_TPM_UNAVAILABLE', `${tool}: the TPM device ${device} (identity.tpm.tcti "${tcti}") does not exist now: no TPM, its driver not loaded yet, or a wrong path`, { tool, tcti, device });
  }
  return new GuardianError('GUARDIAN_E_TPM_UNAVAILABLE', `${tool}: cannot reach the TPM at ${tcti}: ${detail}`, { tool, tcti });
}

export function toolError(tool: string, tcti: string, stderr: string, status: number | string): GuardianError {
  const rc = parseRc(stderr);
  const detail = lastError(stderr);
  if (rc === undefined) {
    const tctiError = tctiFailure(tool, tcti, stderr, detail);
    if (tctiError !== undefined) return tctiError;
    return new GuardianError('GUARDIAN_E_TPM', `${tool} failed (${status}): ${detail}`, { tool, tcti });
  }
  const base = baseRc(rc);
  const code: ErrorCode = rc >>> 16 === 0x0a ? 'GUARDIAN_E_TPM_UNAVAILABLE' : (RC as Record<number, ErrorCode>)[base] ?? 'GUARDIAN_E_TPM';
  return new GuardianError(code, `${tool}: TPM response code ${rcHex(rc)}: ${detail}`, { tool, tcti, rc: rcHex(rc) });
}

/** A private scratch directory (mode 0700) for public blobs and context files of one operation. */
export function scratch(): { dir: string; file: (name: string) => string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'guardian-tpm-'));
  return { dir, file: (name) => path.join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** An fd of an unlinked file holding `bytes`, on /dev/shm when there is one (RAM). */
function unlinkedFile(bytes: Buffer): number {
  for (const base of ['/dev/shm', tmpdir()]) {
    let dir: string;
    try {
      dir = mkdtempSync(path.join(base, 'guardian-'));
    } catch {
      continue;
    }
    let fd: number;
    try {
      fd = openSync(path.join(dir, 'in'), 'wx+', 0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    try {
      writeSync(fd, bytes, 0, bytes.length, 0);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return fd;
  }
  throw new GuardianError('GUARDIAN_E_KEYSTORE_IO', 'no writable /dev/shm or temporary directory for a TPM input');
}

export class TpmTools {
  /** Tools started so far (benchmarks count them). */
  calls = 0;

  constructor(readonly tcti: string, private readonly log?: Logger) {}

  /** Runs the tool; a debug line says each call ended (provisioning's crash tests count them). */
  run(tool: TpmTool, args: readonly string[], options: RunOptions = {}): Promise<Buffer> {
    const call = this.calls + 1;
    return this.spawnTool(tool, args, options).then((out) => {
      this.log?.debug({ tool, call, ok: true }, 'tpm2 call ended');
      return out;
    }, (err: unknown) => {
      this.log?.debug({ tool, call, ok: false }, 'tpm2 call ended');
      throw err;
    });
  }

  private spawnTool(tool: TpmTool, args: readonly string[], options: RunOptions): Promise<Buffer> {
    this.calls += 1;
    const fd3 = options.fd3 === undefined ? undefined : unlinkedFile(options.fd3);
    return new Promise<Buffer>((resolve, reject) => {
      const child = spawn(toolPath(tool), args, {
        env: { TPM2TOOLS_TCTI: this.tcti }, // pinned: nothing of Guardian's environment (LD_PRELOAD, …) reaches the tool
        stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe', ...(fd3 === undefined ? [] : [fd3])],
        timeout: TIMEOUT_MS,
      });
      if (fd3 !== undefined) closeSync(fd3);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout?.on('data', (b: Buffer) => out.push(b));
      child.stderr?.on('data', (b: Buffer) => err.push(b));
      let stdinError: Error | undefined;
      if (child.stdin !== null) {
        // a tool that exits before reading its input fails with a status that says why; keep EPIPE as context
        child.stdin.on('error', (e) => { stdinError = e; });
        child.stdin.end(options.stdin);
      }
      child.on('error', (cause: NodeJS.ErrnoException) => {
        reject(cause.code === 'ENOENT'
          ? new GuardianError('GUARDIAN_E_TPM_UNAVAILABLE', `${tool} is not installed; install tpm2-tools`, { tool }, { cause })
          : new GuardianError('GUARDIAN_E_TPM_UNAVAILABLE', `${tool} could not be started: ${cause.message}`, { tool }, { cause }));
      });
      child.on('close', (status, signal) => {
        if (status === 0) resolve(Buffer.concat(out));
        else if (signal !== null) reject(new GuardianError('GUARDIAN_E_TPM_UNAVAILABLE', `${tool} did not finish in ${TIMEOUT_MS} ms (${signal}); the TPM at ${this.tcti} does not answer`, { tool, tcti: this.tcti }));
        else reject(toolError(tool, this.tcti, Buffer.concat(err).toString() + (stdinError === undefined ? '' : `\nERROR: input not read: ${stdinError.message}`), status ?? 'unknown'));
      });
    });
  }
}
