/**
 * The TPM 2.0 key store, through tpm2-tools (there is no usable TSS for Node).
 *
 * - A storage primary key (ECC P-256, AES-128-CFB) under the owner hierarchy,
 *   persisted at `handleBase`. It is derived from the owner seed, so re-creating
 *   it gives the same key: provisioning is idempotent and checks the Name.
 * - The owner authorization is set at provisioning (random 32 bytes in a 0600
 *   file) and is needed to create and persist keys, not to use them.
 * - Signing and attestation keys are persisted at handles above `handleBase`,
 *   recorded with their Name; HMAC keys and sealed secrets are TPM-wrapped
 *   blobs in the state directory, loaded when used and flushed afterwards.
 * - A sealed secret is an envelope: a 32-byte key sealed by the TPM encrypts
 *   the secret with AES-256-GCM (a TPM sealed object holds at most 128 bytes).
 * - One operation at a time; transient objects are flushed after each one
 *   (swtpm and a raw /dev/tpm0 have no resource manager).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { GuardianError, hasCode } from '../../core/errors.js';
import {
  checkDigest, checkName, checkNonce, checkPcrSelection, checkSecret, MAX_HMAC_KEY_BYTES, MAX_SEALED_BYTES, missing, Serial, settle,
  type Endorsement, type KeyInfo, type KeyStore, type ObjectKind, type Quote,
} from '../keystore.js';
import { blob, corrupt, describeRecord, info, listRecords, RecordFiles, type ObjectRecord, type RootRecord } from '../records.js';
import { activateCredential, readEndorsement } from './endorsement.js';
import { closeEnvelope, openEnvelope } from './envelope.js';
import { signatureToDer } from './marshal.js';
import { OwnerAuth } from './owner.js';
import { scratch, TpmTools } from './tools.js';

export interface TpmOptions {
  readonly dir: string;
  /** e.g. `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`. */
  readonly tcti: string;
  /** `hex:<hex>` or `str:<text>`, mode 0600; created at provisioning when missing. */
  readonly ownerAuthFile: string;
  /** Persistent handle of the primary key; keys get the handles above it. */
  readonly handleBase: number;
  readonly log: Logger;
}

const PRIMARY = ['-G', 'ecc256:aes128cfb', '-g', 'sha256', '-a', 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda'];
const SIGN = ['-G', 'ecc256:ecdsa-sha256', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign'];
const ATTEST = ['-G', 'ecc256:ecdsa-sha256:null', '-a', 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign'];
const SEALED = ['-a', 'fixedtpm|fixedparent|userwithauth|noda'];
const MAX_KEYS = 0xff;
export const ATTEST_KEY = 'attest';

export class TpmKeyStore implements KeyStore {
  readonly backend = 'tpm' as const;
  readonly hardwareBacked = true;
  readonly tools: TpmTools;
  private readonly files: RecordFiles;
  private readonly serial = new Serial();
  private readonly owner: OwnerAuth;

  constructor(private readonly options: TpmOptions) {
    this.tools = new TpmTools(options.tcti, options.log);
    this.files = new RecordFiles(options.dir);
    this.owner = new OwnerAuth(this.tools, options.ownerAuthFile, options.log, this.files.secretPlace(options.ownerAuthFile));
  }

  private get primary(): string {
    return hex(this.options.handleBase);
  }

  /**
   * Flushes what a crashed run left loaded and checks that the persisted keys
   * are the recorded ones. A recorded key the TPM does not hold (evicted, or a
   * provisioning interrupted between recording and persisting it) is logged
   * with GUARDIAN_E_KEYSTORE_MISSING, not fatal: `identity init` persists it
   * again, and using it fails with that code until then.
   */
  open(): Promise<void> {
    return this.serial.run(async () => {
      await this.flush();
      await this.tools.run('tpm2_flushcontext', ['-s']); // a policy session left by a crash during credential activation
      const root = this.files.readRoot();
      if (root === undefined) return;
      await this.checkRoot(root);
      for (const name of this.files.names()) {
        const record = this.files.read(name, this.backend);
        if (record === undefined || (record.kind !== 'sign' && record.kind !== 'attest')) continue;
        await this.checkPersisted(record, false).catch((err: unknown) => {
          if (!hasCode(err, 'GUARDIAN_E_KEYSTORE_MISSING')) throw err;
          this.options.log.warn({ err, key: name }, (err as Error).message);
        });
      }
    });
  }

  close(): Promise<void> {
    return this.serial.run(() => Promise.resolve());
  }

  provisioned(): Promise<boolean> {
    return settle(() => this.files.readRoot() !== undefined);
  }

  /**
   * Resumable: each step is checked against the TPM before it is done (the
   * owner authorization, the primary key at its handle, the root record), so
   * a run killed after any tpm2 call is completed by the next one.
   */
  provision(): Promise<void> {
    return this.serial.run(async () => {
      const removed = this.files.sweep();
      if (removed > 0) this.options.log.warn({ dir: this.options.dir, removed }, 'key store: removed temp files an interrupted write left');
      await this.flush();
      await this.owner.ensure();
      const s = scratch();
      try {
        await this.tools.run('tpm2_createprimary', ['-C', 'o', '-P', this.authArg(), ...PRIMARY, '-c', s.file('primary.ctx')]);
        const name = await this.nameOf(s.file('primary.ctx'));
        const current = await this.nameOf(this.primary).catch((err: unknown) => {
          if (hasCode(err, 'GUARDIAN_E_KEYSTORE_MISSING')) return undefined;
          throw err;
        });
        if (current === undefined) {
          await this.tools.run('tpm2_evictcontrol', ['-C', 'o', '-P', this.authArg(), '-c', s.file('primary.ctx'), this.primary]);
          this.options.log.info({ handle: this.primary, step: 'primary-persisted' }, 'provisioning: primary key persisted');
        } else if (current !== name) {
          throw new GuardianError('GUARDIAN_E_TPM', `persistent handle ${this.primary} holds another object; free it (tpm2_evictcontrol) or set identity.tpm.handleBase to a free range`, { handle: this.primary });
        }
        const root = this.files.readRoot();
        if (root === undefined || root.data.primaryName !== name) {
          if (root !== undefined) this.options.log.warn({ handle: this.primary }, 'the TPM primary key changed (the TPM was cleared): keys made before cannot be loaded; re-create them');
          this.files.writeRoot({ backend: this.backend, data: { primary: this.options.handleBase, primaryName: name, tcti: this.options.tcti } });
        }
      } finally {
        s.remove();
        await this.flush();
      }
    });
  }

  describe(name: string): Promise<KeyInfo | undefined> {
    return settle(() => describeRecord(this.files, this.backend, name));
  }

  list(): Promise<KeyInfo[]> {
    return settle(() => listRecords(this.files, this.backend));
  }

  createSigningKey(name: string): Promise<KeyInfo> {
    return this.serial.run(() => {
      checkName(name);
      return this.persistentKey(name, 'sign');
    });
  }

  sign(name: string, digest: Buffer): Promise<Buffer> {
    return this.serial.run(async () => {
      checkDigest(digest);
      const record = this.record(name, 'sign');
      const s = scratch();
      try {
        await this.tools.run('tpm2_sign', ['-c', hex(this.handleOf(record)), '-g', 'sha256', '-d', '-f', 'plain', '-o', s.file('sig')], { stdin: digest });
        return readFileSync(s.file('sig'));
      } finally {
        s.remove();
      }
    });
  }

  importHmacKey(name: string, secret: Buffer): Promise<KeyInfo> {
    return this.serial.run(async () => {
      checkName(name);
      checkSecret(secret, 'an HMAC key', MAX_HMAC_KEY_BYTES);
      this.root();
      await this.owner.prove(PRIMARY);
      const s = scratch();
      try {
        await this.tools.run('tpm2_import', ['-C', this.primary, '-G', 'hmac', '-g', 'sha256', '-i', '/dev/fd/3', '-u', s.file('pub'), '-r', s.file('priv')], { fd3: secret });
        return info(this.files.write({ backend: this.backend, name, kind: 'hmac', data: { public: b64(s.file('pub')), private: b64(s.file('priv')) } }));
      } finally {
        s.remove();
      }
    });
  }

  hmac(name: string, data: Buffer): Promise<Buffer> {
    return this.serial.run(() => this.withLoaded(this.record(name, 'hmac'), async (ctx) => {
      const out = await this.tools.run('tpm2_hmac', ['-c', ctx, '-g', 'sha256', '--hex'], { stdin: data });
      return Buffer.from(out.toString().trim(), 'hex');
    }));
  }

  seal(name: string, secret: Buffer): Promise<KeyInfo> {
    return this.serial.run(async () => {
      checkName(name);
      checkSecret(secret, 'a sealed secret', MAX_SEALED_BYTES);
      this.root();
      await this.owner.prove(PRIMARY);
      const dek = randomBytes(32);
      const s = scratch();
      try {
        await this.tools.run('tpm2_create', ['-C', this.primary, '-i', '-', ...SEALED, '-u', s.file('pub'), '-r', s.file('priv')], { stdin: dek });
        const data = { public: b64(s.file('pub')), private: b64(s.file('priv')), ...closeEnvelope(name, dek, secret) };
        return info(this.files.write({ backend: this.backend, name, kind: 'sealed', data }));
      } finally {
        dek.fill(0);
        s.remove();
        await this.flush();
      }
    });
  }

  unseal(name: string): Promise<Buffer> {
    return this.serial.run(async () => {
      const record = this.record(name, 'sealed');
      const file = this.files.objectFile(name);
      const dek = await this.withLoaded(record, (ctx) => this.tools.run('tpm2_unseal', ['-c', ctx]));
      try {
        return openEnvelope(name, dek, record, file);
      } finally {
        dek.fill(0);
      }
    });
  }

  createAttestationKey(): Promise<KeyInfo> {
    return this.serial.run(() => this.persistentKey(ATTEST_KEY, 'attest'));
  }

  attest(nonce: Buffer, pcrSelection: string): Promise<Quote> {
    return this.serial.run(async () => {
      checkNonce(nonce);
      checkPcrSelection(pcrSelection);
      const record = this.record(ATTEST_KEY, 'attest');
      const s = scratch();
      try {
        await this.tools.run('tpm2_quote', ['-c', hex(this.handleOf(record)), '-l', pcrSelection, '-q', nonce.toString('hex'), '-g', 'sha256',
          '-m', s.file('msg'), '-s', s.file('sig'), '-o', s.file('pcrs')]);
        const signature = readFileSync(s.file('sig'));
        return {
          nonce, pcrSelection, message: readFileSync(s.file('msg')), signature, signatureDer: signatureToDer(signature),
          pcrs: readFileSync(s.file('pcrs')), akPublicPem: record.publicKeyPem ?? '',
        };
      } finally {
        s.remove();
      }
    });
  }

  endorsement(): Promise<Endorsement> {
    return this.serial.run(() => {
      const record = this.record(ATTEST_KEY, 'attest');
      return readEndorsement(this.tools, hex(this.handleOf(record)), String(record.data.name));
    });
  }

  activateCredential(credential: Buffer): Promise<Buffer> {
    return this.serial.run(() => activateCredential(this.tools, hex(this.handleOf(this.record(ATTEST_KEY, 'attest'))), credential));
  }

  // --- internals (called inside serial.run) ---

  private root(): RootRecord {
    const root = this.files.readRoot();
    if (root === undefined) throw missing('the TPM primary key', undefined);
    if (root.backend !== this.backend) throw corrupt(this.files.rootFile, `it belongs to the ${root.backend} backend`);
    return root;
  }

  private record(name: string, kind: ObjectKind): ObjectRecord {
    checkName(name);
    this.root();
    const record = this.files.read(name, this.backend);
    if (record === undefined) throw missing(name, undefined);
    if (record.kind !== kind) throw missing(name, kind);
    return record;
  }

  private handleOf(record: ObjectRecord): number {
    const handle = record.data.handle;
    const base = this.options.handleBase;
    if (typeof handle !== 'number' || handle <= base || handle > base + MAX_KEYS) throw corrupt(this.files.objectFile(record.name), 'bad persistent handle');
    return handle;
  }

  private async checkRoot(root: RootRecord): Promise<void> {
    if (root.backend !== this.backend) throw corrupt(this.files.rootFile, `it belongs to the ${root.backend} backend`);
    const name = await this.nameOf(this.primary);
    if (name !== root.data.primaryName) {
      throw new GuardianError('GUARDIAN_E_KEYSTORE_CORRUPT', `the TPM primary key at ${this.primary} is not the one provisioned (the TPM was cleared or the handle reused); run \`guardian identity init\``, { handle: this.primary });
    }
  }

  /** The persisted key holds the recorded Name; a key missing from the TPM is loaded from its blobs and persisted again. */
  private async checkPersisted(record: ObjectRecord, repair: boolean): Promise<void> {
    const handle = hex(this.handleOf(record));
    const name = await this.nameOf(handle).catch((err: unknown) => {
      if (hasCode(err, 'GUARDIAN_E_KEYSTORE_MISSING')) return undefined;
      throw err;
    });
    if (name === record.data.name) return;
    if (name !== undefined) throw new GuardianError('GUARDIAN_E_KEYSTORE_CORRUPT', `persistent handle ${handle} holds another key than ${record.name}`, { handle, name: record.name });
    if (!repair) throw new GuardianError('GUARDIAN_E_KEYSTORE_MISSING', `${record.name} is no longer persisted at ${handle}; run \`guardian identity init\` to persist it again`, { handle, name: record.name });
    await this.withLoaded(record, (ctx) => this.tools.run('tpm2_evictcontrol', ['-C', 'o', '-P', this.authArg(), '-c', ctx, handle]));
    this.options.log.warn({ handle, key: record.name }, 'key store: key was missing from the TPM and was persisted again');
  }

  private async persistentKey(name: string, kind: 'sign' | 'attest'): Promise<KeyInfo> {
    this.root();
    const existing = this.files.read(name, this.backend);
    if (existing !== undefined) {
      if (existing.kind !== kind) throw missing(name, kind);
      this.owner.check();
      await this.checkPersisted(existing, true);
      return info(existing);
    }
    await this.owner.prove(PRIMARY);
    const handle = await this.freeHandle();
    const s = scratch();
    try {
      await this.tools.run('tpm2_create', ['-C', this.primary, ...(kind === 'sign' ? SIGN : ATTEST), '-u', s.file('pub'), '-r', s.file('priv')]);
      await this.tools.run('tpm2_load', ['-C', this.primary, '-u', s.file('pub'), '-r', s.file('priv'), '-c', s.file('key.ctx')]);
      await this.tools.run('tpm2_readpublic', ['-c', s.file('key.ctx'), '-f', 'pem', '-o', s.file('key.pem'), '-n', s.file('name')]);
      // the record is the journal: written (fsynced) before the key is persisted, so a run killed
      // in between neither loses the key nor leaks its handle; the next init persists it (checkPersisted)
      const record = this.files.write({
        backend: this.backend, name, kind, publicKeyPem: readFileSync(s.file('key.pem'), 'utf8'),
        data: { handle, name: readFileSync(s.file('name')).toString('hex'), public: b64(s.file('pub')), private: b64(s.file('priv')) },
      });
      this.options.log.info({ key: name, handle: hex(handle), step: 'key-recorded' }, 'provisioning: key recorded');
      await this.tools.run('tpm2_evictcontrol', ['-C', 'o', '-P', this.authArg(), '-c', s.file('key.ctx'), hex(handle)]);
      this.options.log.info({ key: name, handle: hex(handle), step: 'key-persisted' }, 'provisioning: key persisted');
      return info(record);
    } finally {
      s.remove();
      await this.flush();
    }
  }

  private async freeHandle(): Promise<number> {
    const used = new Set<number>();
    for (const n of this.files.names()) {
      const h = this.files.read(n, this.backend)?.data.handle;
      if (typeof h === 'number') used.add(h);
    }
    const out = (await this.tools.run('tpm2_getcap', ['handles-persistent'])).toString();
    for (const m of out.matchAll(/0x([0-9a-fA-F]{8})/g)) used.add(Number.parseInt(m[1]!, 16));
    for (let h = this.options.handleBase + 1; h <= this.options.handleBase + MAX_KEYS; h++) if (!used.has(h)) return h;
    throw new GuardianError('GUARDIAN_E_TPM', `no free persistent handle above ${this.primary}`, { handle: this.primary });
  }

  /** Loads a record's blobs under the primary, runs `op` with the context file, and flushes. */
  private async withLoaded<T>(record: ObjectRecord, op: (ctx: string) => Promise<T>): Promise<T> {
    const file = this.files.objectFile(record.name);
    const s = scratch();
    try {
      writeFileSync(s.file('pub'), blob(record, 'public', file));
      writeFileSync(s.file('priv'), blob(record, 'private', file));
      try {
        await this.tools.run('tpm2_load', ['-C', this.primary, '-u', s.file('pub'), '-r', s.file('priv'), '-c', s.file('obj.ctx')]);
      } catch (err) {
        if (hasCode(err, 'GUARDIAN_E_TPM_UNAVAILABLE') || hasCode(err, 'GUARDIAN_E_TPM_TCTI') || hasCode(err, 'GUARDIAN_E_KEYSTORE_AUTH')) throw err;
        const rc = err instanceof GuardianError && typeof err.context.rc === 'string' ? ` (TPM response code ${err.context.rc})` : '';
        throw corrupt(file, `the TPM refused to load it${rc}: ${(err as Error).message}`, err);
      }
      return await op(s.file('obj.ctx'));
    } finally {
      s.remove();
      await this.flush();
    }
  }

  private async nameOf(context: string): Promise<string> {
    const s = scratch();
    try {
      await this.tools.run('tpm2_readpublic', ['-c', context, '-n', s.file('name')]);
      return readFileSync(s.file('name')).toString('hex');
    } finally {
      s.remove();
    }
  }

  private flush(): Promise<void> {
    return this.tools.run('tpm2_flushcontext', ['-t']).then(() => undefined);
  }

  private authArg(): string {
    return this.owner.arg;
  }
}

function hex(handle: number): string {
  return `0x${handle.toString(16).padStart(8, '0')}`;
}

function b64(file: string): string {
  return readFileSync(file).toString('base64');
}
