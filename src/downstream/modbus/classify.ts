import { GuardianError } from '../../core/errors.js';
import type { Quality } from '../../core/types.js';

export type FailureKind = 'timeout' | 'exception' | 'frame' | 'transport';

export interface ModbusFailure {
  readonly kind: FailureKind;
  readonly quality: Quality;
  readonly error: GuardianError;
}

const FRAME_PATTERNS = [/^CRC error/, /^Data length error/, /^Unexpected data error/];

function field(err: unknown, key: string): unknown {
  return typeof err === 'object' && err !== null ? (err as Record<string, unknown>)[key] : undefined;
}

/**
 * Turn what modbus-serial rejects with into one of four kinds. modbus-serial
 * marks exceptions with `modbusCode`, timeouts with errno ETIMEDOUT, transport
 * failures with errno ECONNREFUSED ("Port Not Open") or a socket errno; bad
 * frames only carry a message (CRC, length, unexpected unit id or function).
 */
export function classify(err: unknown, context: Record<string, string | number>): ModbusFailure {
  const message = String(field(err, 'message') ?? err);
  const modbusCode = field(err, 'modbusCode');
  if (typeof modbusCode === 'number') {
    return {
      kind: 'exception',
      quality: `bad:exception:${modbusCode}`,
      error: new GuardianError('GUARDIAN_E_MODBUS_EXCEPTION', message, { ...context, exception: modbusCode }, { cause: err }),
    };
  }
  if (field(err, 'errno') === 'ETIMEDOUT' || message === 'Timed out') {
    return {
      kind: 'timeout',
      quality: 'bad:timeout',
      error: new GuardianError('GUARDIAN_E_MODBUS_TIMEOUT', `no answer within ${String(context['timeoutMs'] ?? '?')} ms`, context, { cause: err }),
    };
  }
  if (FRAME_PATTERNS.some((re) => re.test(message))) {
    return {
      kind: 'frame',
      quality: 'bad:frame',
      error: new GuardianError('GUARDIAN_E_MODBUS_FRAME', message, context, { cause: err }),
    };
  }
  return {
    kind: 'transport',
    quality: 'bad:disconnected',
    error: new GuardianError('GUARDIAN_E_MODBUS_CONNECT', message, context, { cause: err }),
  };
}
