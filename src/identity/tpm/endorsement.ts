/**
 * What ties the attestation key to this TPM, for a verifier:
 *
 * - the endorsement key (EK): the TCG default RSA 2048 template, re-created
 *   from the endorsement seed on demand (`tpm2_createek -G rsa`, the same key
 *   every time), and the manufacturer's EK certificate at NV index 0x01c00002
 *   where there is one;
 * - the attestation key's public area and Name, which the verifier feeds to
 *   TPM2_MakeCredential (`tpm2_makecredential -T none`, no TPM needed) with a
 *   challenge encrypted to the EK;
 * - credential activation: the TPM releases the challenge only when the key
 *   with that Name is loaded in the TPM that holds that EK.
 *
 * Transient objects and the policy session are flushed after each operation.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { GuardianError, hasCode } from '../../core/errors.js';
import type { Endorsement } from '../keystore.js';
import { ramDir } from './ram-dir.js';
import { baseRc, scratch, type TpmTools } from './tools.js';

/** The TCG EK Credential Profile's index for the RSA 2048 EK certificate. */
export const EK_CERT_INDEX = '0x01c00002';
/** tpm2_makecredential's output: a 0xBADCC0DE header, TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET (336 bytes for RSA 2048). */
export const MAX_CREDENTIAL_BYTES = 1024;
const CREDENTIAL_MAGIC = 0xbadcc0de;
/**
 * What TPM2_ActivateCredential answers to a credential made for another key or
 * EK: TPM_RC_INTEGRITY (another AK Name), TPM_RC_VALUE / TPM_RC_SIZE (a secret
 * that does not decrypt), and TPM_RC_FAILURE, which libtpms (swtpm) returns for
 * a secret encrypted to another EK. A TPM really in failure mode fails the
 * flush that follows too, and that error is what the caller sees.
 */
const INPUT_RCS = new Set([0x084, 0x095, 0x09f, 0x101]);

type Scratch = Pick<ReturnType<typeof scratch>, 'file'>;

async function createEk(tools: TpmTools, s: Scratch, publicPem?: string): Promise<string> {
  await tools.run('tpm2_createek', ['-c', s.file('ek.ctx'), '-G', 'rsa', ...(publicPem === undefined ? [] : ['-u', publicPem, '-f', 'pem'])]);
  return s.file('ek.ctx');
}

/** The certificate at the start of an NV index (which may be padded; `raw` is the exact DER), or undefined when it holds none. */
function certificateIn(data: Buffer): Buffer | undefined {
  try {
    return Buffer.from(new X509Certificate(data).raw);
  } catch {
    return undefined;
  }
}

async function readEkCertificate(tools: TpmTools, s: Scratch): Promise<Buffer | undefined> {
  try {
    // the index's own (empty) authorization: authread, readable whatever the owner authorization is
    await tools.run('tpm2_nvread', [EK_CERT_INDEX, '-C', EK_CERT_INDEX, '-o', s.file('ek.crt')]);
  } catch (err) {
    if (hasCode(err, 'GUARDIAN_E_KEYSTORE_MISSING')) return undefined; // no certificate provisioned by the manufacturer
    throw err;
  }
  return certificateIn(readFileSync(s.file('ek.crt')));
}

/** The EK (public PEM and certificate) and the attestation key's public area and Name. */
export async function readEndorsement(tools: TpmTools, akHandle: string, akRecordedName: string): Promise<Endorsement> {
  const s = scratch();
  try {
    await createEk(tools, s, s.file('ek.pem'));
    await tools.run('tpm2_readpublic', ['-c', akHandle, '-o', s.file('ak.pub'), '-n', s.file('ak.name')]);
    const akName = readFileSync(s.file('ak.name'));
    if (akName.toString('hex') !== akRecordedName) {
      throw new GuardianError('GUARDIAN_E_KEYSTORE_CORRUPT', `persistent handle ${akHandle} holds another key than the attestation key`, { handle: akHandle });
    }
    return {
      ekPublicPem: readFileSync(s.file('ek.pem'), 'utf8'),
      ekCertificate: await readEkCertificate(tools, s),
      akPublic: readFileSync(s.file('ak.pub')),
      akName,
    };
  } finally {
    s.remove();
    await tools.run('tpm2_flushcontext', ['-t']);
  }
}

export function checkCredential(credential: Buffer): void {
  if (credential.length < 8 || credential.length > MAX_CREDENTIAL_BYTES || credential.readUInt32BE(0) !== CREDENTIAL_MAGIC) {
    throw new GuardianError('GUARDIAN_E_KEYSTORE_INPUT',
      `a credential is what tpm2_makecredential writes (a 0xBADCC0DE header, at most ${MAX_CREDENTIAL_BYTES} bytes); got ${credential.length} bytes${credential.length >= 4 ? ` starting 0x${credential.readUInt32BE(0).toString(16)}` : ''}`,
      { bytes: credential.length });
  }
}

/** TPM2_ActivateCredential with the attestation key and the EK: the challenge the verifier encrypted, or a refusal. */
export async function activateCredential(tools: TpmTools, akHandle: string, credential: Buffer): Promise<Buffer> {
  checkCredential(credential);
  // the credential and the challenge it releases only ever touch memory
  const s = ramDir();
  const session = s.file('session.ctx');
  try {
    writeFileSync(s.file('cred'), credential);
    const ek = await createEk(tools, s);
    await tools.run('tpm2_startauthsession', ['--policy-session', '-S', session]);
    await tools.run('tpm2_policysecret', ['-S', session, '-c', 'e']);
    try {
      await tools.run('tpm2_activatecredential', ['-c', akHandle, '-C', ek, '-i', s.file('cred'), '-o', s.file('secret'), '-P', `session:${session}`]);
    } catch (err) {
      const rc = err instanceof GuardianError ? err.context['rc'] : undefined;
      const refused = typeof rc === 'string' ? INPUT_RCS.has(baseRc(Number.parseInt(rc, 16))) : hasCode(err, 'GUARDIAN_E_TPM');
      if (refused) {
        throw new GuardianError('GUARDIAN_E_KEYSTORE_INPUT',
          `the credential was not made for this TPM's endorsement key and attestation key${typeof rc === 'string' ? ` (TPM response code ${rc})` : ''}: make it with the ek.pub.pem and the ak.pub Name that \`guardian identity attest --out\` wrote`,
          { ...(typeof rc === 'string' ? { rc } : {}) }, { cause: err });
      }
      throw err;
    }
    return readFileSync(s.file('secret'));
  } finally {
    if (existsSync(session)) await tools.run('tpm2_flushcontext', [session]).catch(() => undefined);
    s.remove();
    await tools.run('tpm2_flushcontext', ['-t']);
  }
}
