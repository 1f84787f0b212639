/**
 * The one TPM structure Guardian reads itself: an ECDSA TPMT_SIGNATURE (TCG
 * part 2, 11.3.4), so that a quote's signature can also be given as DER.
 */
import { p256 } from '@noble/curves/nist.js';
import { GuardianError } from '../../core/errors.js';

const TPM_ALG_ECDSA = 0x0018;

export function signatureToDer(tpmt: Buffer): Buffer {
  const bad = (why: string): GuardianError => new GuardianError('GUARDIAN_E_TPM', `unexpected TPMT_SIGNATURE from the TPM: ${why}`);
  if (tpmt.length < 8) throw bad('too short');
  if (tpmt.readUInt16BE(0) !== TPM_ALG_ECDSA) throw bad(`algorithm 0x${tpmt.readUInt16BE(0).toString(16)} is not ECDSA`);
  let at = 4; // sigAlg, hash
  const part = (): bigint => {
    if (at + 2 > tpmt.length) throw bad('truncated');
    const size = tpmt.readUInt16BE(at);
    at += 2;
    if (size === 0 || size > 32 || at + size > tpmt.length) throw bad('bad parameter size');
    const value = BigInt(`0x${tpmt.subarray(at, at + size).toString('hex')}`);
    at += size;
    return value;
  };
  const r = part();
  const s = part();
  return Buffer.from(new p256.Signature(r, s).toBytes('der'));
}
