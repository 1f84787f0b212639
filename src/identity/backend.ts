import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { IdentityConfig } from '../config/types.js';
import { GuardianError } from '../core/errors.js';
import type { Backend, KeyStore } from './keystore.js';
import { PlutonSimKeyStore } from './pluton-sim/store.js';
import { RecordFiles } from './records.js';
import { TpmKeyStore } from './tpm/store.js';

/**
 * Which backend to use. `auto` keeps the backend the store was provisioned with
 * (a TPM that disappeared is an error, never a silent switch to software); a
 * new store uses the TPM when its device exists (or a simulator TCTI is set).
 */
export function chooseBackend(config: IdentityConfig): Backend {
  const root = new RecordFiles(config.dir).readRoot();
  if (root !== undefined) {
    if (config.backend !== 'auto' && config.backend !== root.backend) {
      throw new GuardianError('GUARDIAN_E_IDENTITY_BACKEND', `the identity in ${config.dir} was provisioned with the ${root.backend} backend, identity.backend says ${config.backend}`, { dir: config.dir });
    }
    return root.backend;
  }
  if (config.backend !== 'auto') return config.backend;
  const tcti = config.tpm.tcti;
  if (!tcti.startsWith('device:')) return 'tpm';
  return existsSync(tcti.slice('device:'.length) || '/dev/tpmrm0') ? 'tpm' : 'pluton-sim';
}

export function createKeyStore(config: IdentityConfig, log: Logger): KeyStore {
  const backend = chooseBackend(config);
  return backend === 'tpm'
    ? new TpmKeyStore({ dir: config.dir, tcti: config.tpm.tcti, ownerAuthFile: config.tpm.ownerAuthFile, handleBase: config.tpm.handleBase, log })
    : new PlutonSimKeyStore({ dir: config.dir, secretFile: config.plutonSim.secretFile, log });
}
