/**
 * `guardian identity init | show | csr | install-cert | import-sas-key | attest | activate-credential`.
 * They may run as root (the TPM owner authorization is root's): the files in
 * the state directory are then read and written with the file-system identity
 * of the directory's owner, never through a link, FIFO or hard link that user
 * could have planted (src/identity/safe-fs.ts); nothing is chowned.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/types.js';
import { GuardianError, hasCode } from '../core/errors.js';
import { CERT_KEYS, DeviceIdentity, IDENTITY_KEY, type CertKey } from '../identity/identity.js';
import { writeAtomic } from '../identity/records.js';
import { createKeyStore } from '../identity/backend.js';
import type { KeyStore } from '../identity/keystore.js';
import { allowOwnerSwitch, privateDir } from '../identity/safe-fs.js';

export interface IdentityArgs {
  readonly subject?: string | undefined;
  readonly key?: string | undefined;
  readonly nonce?: string | undefined;
  readonly pcrs?: string | undefined;
  readonly out?: string | undefined;
  readonly json?: boolean | undefined;
}

export interface Io {
  readonly out: (text: string) => void;
  readonly readStdin: () => Promise<Buffer>;
}

const usage = (message: string): GuardianError => new GuardianError('GUARDIAN_E_USAGE', message);

function certKey(value: string | undefined): CertKey {
  const key = value ?? IDENTITY_KEY;
  if (!(CERT_KEYS as readonly string[]).includes(key)) throw usage(`--key must be ${CERT_KEYS.join(' or ')}`);
  return key as CertKey;
}

export async function identityCommand(sub: string | undefined, file: string | undefined, args: IdentityArgs, config: GatewayConfig, log: Logger, io: Io): Promise<number> {
  allowOwnerSwitch(); // as root: files in the state directory are handled as its owner (src/identity/safe-fs.ts)
  try {
    return await identitySubcommand(sub, file, args, config, log, io);
  } catch (err) {
    if (hasCode(err, 'GUARDIAN_E_IDENTITY_UNSAFE_PATH')) log.error({ err }, 'identity: refused a planted file in the state directory; nothing was read or written through it');
    throw err;
  }
}

/** What every identity subcommand works with; the key store is open. */
interface Ctx {
  readonly identity: DeviceIdentity;
  readonly store: KeyStore;
  readonly file: string | undefined;
  readonly args: IdentityArgs;
  readonly config: GatewayConfig;
  readonly io: Io;
}

type Subcommand = (c: Ctx) => Promise<number>;

async function init({ identity, store, io }: Ctx): Promise<number> {
  const created = await identity.init();
  const report = await identity.show();
  io.out(`${created.length === 0 ? 'already provisioned' : `provisioned: ${created.join(', ')}`} (${store.backend}${store.hardwareBacked ? '' : ', NOT hardware-backed'})\n`);
  for (const k of report.keys) if (k.fingerprint !== undefined) io.out(`  ${k.name}: sha256:${k.fingerprint}\n`);
  return 0;
}

async function show({ identity, args, io }: Ctx): Promise<number> {
  const report = await identity.show();
  if (args.json === true) {
    io.out(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  io.out(`device id: ${report.deviceId}\nbackend: ${report.backend} (${report.hardwareBacked ? 'hardware-backed' : 'software, NOT hardware-backed'})\n`);
  if (report.keys.length === 0) io.out('no keys: run `guardian identity init`\n');
  for (const k of report.keys) {
    io.out(`\n${k.name} (${k.kind})${k.fingerprint === undefined ? '' : `  sha256:${k.fingerprint}`}\n`);
    if (k.certificate !== undefined) io.out(`  certificate: ${k.certificate.subject}, issued by ${k.certificate.issuer}, valid until ${k.certificate.notAfter}\n`);
    if (k.publicKeyPem !== undefined) io.out(k.publicKeyPem.replace(/^/gm, '  ').trimEnd() + '\n');
  }
  return 0;
}

async function csr({ identity, args, io }: Ctx): Promise<number> {
  if (args.subject === undefined) throw usage('identity csr needs --subject "CN=…"');
  io.out(await identity.csr(args.subject, certKey(args.key)));
  return 0;
}

async function installCert({ identity, file, io }: Ctx): Promise<number> {
  if (file === undefined) throw usage('identity install-cert needs the certificate file');
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new GuardianError('GUARDIAN_E_CERT_INVALID', `cannot read ${file}: ${(err as Error).message}`, { file }, { cause: err });
  }
  const installed = await identity.installCert(pem, file);
  io.out(`installed for the ${installed.key} key: ${installed.subject} (issued by ${installed.issuer}, valid until ${installed.notAfter})\n`);
  return 0;
}

/**
 * IoT Hub symmetric keys are 16-64 bytes: the bounds the Azure IoT SDKs check
 * (azure-iot-sdk-java, service/iot-service-client …/auth/SymmetricKey.java:
 * MinKeyLengthInBytes = 16, MaxKeyLengthInBytes = 64, requirement
 * SRS_SERVICE_SDK_JAVA_SYMMETRICKEY_12_001); the keys the hub generates are 32 bytes.
 */
export const SAS_KEY_BYTES = { min: 16, max: 64 } as const;

const keyInput = (why: string): GuardianError =>
  new GuardianError('GUARDIAN_E_KEYSTORE_INPUT', `identity import-sas-key: ${why}; paste the primary or secondary key exactly as the IoT Hub shows it (base64), on stdin`);

/** The key from its base64 text (one trailing newline allowed); a message never contains the key. */
export function sasKeyFromText(raw: string): Buffer {
  const text = raw.replace(/\r?\n$/, '');
  if (text.trim() === '') throw keyInput('nothing was read from stdin');
  if (/\s/.test(text)) throw keyInput('the key has white space in it (a line break, a space or a tab)');
  if (/[-_]/.test(text)) throw keyInput("the key uses the base64url alphabet ('-', '_'); the hub's keys are plain base64 ('+', '/')");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw keyInput(`the key has characters base64 does not use, or '=' before its end (${text.length} characters read)`);
  if (text.length % 4 !== 0) throw keyInput(`the key's length (${text.length} characters) is not a multiple of 4: padding ('=') is missing or a character is`);
  const key = Buffer.from(text, 'base64');
  if (key.toString('base64') !== text) throw keyInput('the key is not canonical base64 (its last character before the padding carries bits that are not zero): a character is wrong');
  if (key.length < SAS_KEY_BYTES.min || key.length > SAS_KEY_BYTES.max) {
    throw keyInput(`the key decodes to ${key.length} bytes; an IoT Hub symmetric key is ${SAS_KEY_BYTES.min}-${SAS_KEY_BYTES.max} bytes (the hub's own are 32)`);
  }
  return key;
}

async function importSasKey({ identity, store, io }: Ctx): Promise<number> {
  await identity.importSasKey(sasKeyFromText((await io.readStdin()).toString('utf8')));
  io.out(`imported the SAS key into the ${store.backend} key store\n`);
  return 0;
}

type Quote = Awaited<ReturnType<DeviceIdentity['attest']>>;
type Endorsement = Awaited<ReturnType<DeviceIdentity['endorsement']>>;

/** `attest --out DIR`: one file per part, for tpm2_checkquote and tpm2_makecredential. */
function writeAttestation(outDir: string, nonce: string, quote: Quote, ek: Endorsement, ekCertPem: string | undefined): string {
  // temp file O_CREAT|O_EXCL|O_NOFOLLOW, then renamed: an existing link or hard link is refused, never followed
  const put = (name: string, data: string | Buffer): void => writeAtomic(path.join(outDir, name), data, outDir);
  put('quote.msg', quote.message);
  put('quote.sig', quote.signature);
  put('quote.sig.der', quote.signatureDer);
  put('quote.pcrs', quote.pcrs);
  put('ak.pub.pem', quote.akPublicPem);
  put('ak.pub', ek.akPublic);
  put('ek.pub.pem', ek.ekPublicPem);
  if (ekCertPem !== undefined) put('ek.crt', ekCertPem);
  return `wrote quote.msg, quote.sig, quote.sig.der, quote.pcrs, ak.pub.pem, ak.pub, ek.pub.pem${ekCertPem === undefined ? '' : ' and ek.crt'} to ${outDir}\n`
    + `attestation key Name: ${ek.akName.toString('hex')}\n`
    + `${ekCertPem === undefined ? 'this TPM has no EK certificate at NV 0x01c00002: trust ek.pub.pem as recorded at enrolment\n' : ''}`
    + `verify the quote with:\n  tpm2_checkquote -u ak.pub.pem -m quote.msg -s quote.sig -f quote.pcrs -g sha256 -q ${nonce}\n`
    + 'bind the attestation key to the EK with tpm2_makecredential and `guardian identity activate-credential` (see the README)\n';
}

async function attest({ identity, args, config, io }: Ctx): Promise<number> {
  if (args.nonce === undefined || !/^([0-9a-fA-F]{2})+$/.test(args.nonce)) throw usage('identity attest needs --nonce HEX (1-32 bytes, from the verifier)');
  const pcrs = args.pcrs ?? config.identity.attestPcrs;
  const outDir = args.out;
  if (outDir !== undefined) privateDir(outDir); // before the TPM is asked: an unsafe directory costs nothing
  const quote = await identity.attest(Buffer.from(args.nonce, 'hex'), pcrs);
  const ek = await identity.endorsement();
  const ekCertPem = ek.ekCertificate === undefined ? undefined : new X509Certificate(ek.ekCertificate).toString();
  if (outDir !== undefined) {
    io.out(writeAttestation(outDir, args.nonce, quote, ek, ekCertPem));
    return 0;
  }
  io.out(`${JSON.stringify({
    nonce: args.nonce, pcrs, akPublicPem: quote.akPublicPem,
    message: quote.message.toString('base64'), signature: quote.signature.toString('base64'),
    signatureDer: quote.signatureDer.toString('base64'), pcrValues: quote.pcrs.toString('base64'),
    akPublic: ek.akPublic.toString('base64'), akName: ek.akName.toString('hex'),
    ekPublicPem: ek.ekPublicPem, ekCertificatePem: ekCertPem ?? null,
  }, null, 2)}\n`);
  return 0;
}

async function activateCredential({ identity, file, io }: Ctx): Promise<number> {
  if (file === undefined) throw usage('identity activate-credential needs the credential file (tpm2_makecredential -o)');
  let credential: Buffer;
  try {
    credential = readFileSync(file);
  } catch (err) {
    throw new GuardianError('GUARDIAN_E_KEYSTORE_INPUT', `cannot read ${file}: ${(err as Error).message}`, { file }, { cause: err });
  }
  io.out(`${(await identity.activateCredential(credential)).toString('hex')}\n`);
  return 0;
}

const SUBCOMMANDS: ReadonlyMap<string, Subcommand> = new Map<string, Subcommand>([
  ['init', init],
  ['show', show],
  ['csr', csr],
  ['install-cert', installCert],
  ['import-sas-key', importSasKey],
  ['attest', attest],
  ['activate-credential', activateCredential],
]);

async function identitySubcommand(sub: string | undefined, file: string | undefined, args: IdentityArgs, config: GatewayConfig, log: Logger, io: Io): Promise<number> {
  const store = createKeyStore(config.identity, log);
  const identity = new DeviceIdentity(store, { deviceId: config.gateway.id, dir: config.identity.dir, log });
  await store.open();
  try {
    // looked up with the store open, as before the table: an unknown name is reported after the store opened
    const handler = sub === undefined ? undefined : SUBCOMMANDS.get(sub);
    if (handler === undefined) throw usage(`unknown identity command '${String(sub)}' (${[...SUBCOMMANDS.keys()].join(', ')})`);
    return await handler({ identity, store, file, args, config, io });
  } finally {
    await store.close();
  }
}
