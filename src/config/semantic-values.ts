/**
 * Single-value rules the schema cannot say well: file paths the service reads
 * (absolute, no `~`, no `$VAR`), Modbus TCP hosts (one device, not a broadcast),
 * the TLS server name (a DNS name), the MQTT topic prefix, serial device paths.
 * Each returns the problem text (without the path) or undefined.
 */
import { shownText } from '../core/shown.js';
import { realpathSync } from 'node:fs';
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { hostProblem, placeholderIn, placeholderProblem } from '../core/endpoint.js';
import { absoluteDevicePath } from '../core/serial-path.js';

/** A shell-style `$NAME` (a `${NAME}` is reported by the placeholder rule). */
const SHELL_VARIABLE = /\$[A-Za-z_][A-Za-z0-9_]*/;

/** A file or directory the service opens: the service runs with cwd `/` and no shell. */
export function filePathProblem(value: string): string | undefined {
  if (placeholderIn(value) !== undefined) return undefined; // reported by the placeholder rule
  const variable = SHELL_VARIABLE.exec(value)?.[0];
  if (variable !== undefined) return placeholderProblem(variable);
  if (value.startsWith('~')) {
    return `'~' is not expanded: Guardian reads paths as written (no shell); write the full path from '/' (got ${shownText(value)})`;
  }
  if (!value.startsWith('/')) {
    return `must be an absolute path: the service runs in '/', not in the directory you test from (got ${shownText(value)})`;
  }
  return undefined;
}

const ipv4Octets = (host: string): number[] => host.split('.').map(Number);

/** Why an IP literal cannot be one Modbus device to connect to, or undefined. */
function addressProblem(host: string): string | undefined {
  const version = isIP(host);
  const one = 'Modbus TCP connects to one device: write its own address';
  if (version === 4) {
    const [a = 0] = ipv4Octets(host);
    if (host === '255.255.255.255') return `'${host}' is the broadcast address; ${one}`;
    if (a === 0) return `'${host}' is the unspecified address (0.0.0.0/8), which names no device; ${one}`;
    if (a >= 224 && a <= 239) return `'${host}' is a multicast address (224.0.0.0/4); ${one}`;
  } else if (version === 6) {
    if (/^[0:]+$/.test(host)) return `'${host}' is the unspecified address (::), which names no device; ${one}`;
    if (/^ff/i.test(host)) return `'${host}' is a multicast address (ff00::/8); ${one}`;
  }
  return undefined;
}

/** A Modbus TCP host: a host name or an IP address of one device. */
export function modbusHostProblem(host: string): string | undefined {
  return hostProblem(host) ?? addressProblem(host);
}

/** `tls.servername`: the DNS name sent as SNI and matched against the broker's certificate. */
export function servernameProblem(name: string): string | undefined {
  if (isIP(name) !== 0) {
    return `'${name}' is an IP address: a TLS server name must be a DNS name (TLS sends no server name for an address); leave servername out to check the certificate against the url's address`;
  }
  const problem = hostProblem(name);
  return problem === undefined ? undefined : problem.replace(/ or IP address/, '');
}

/** The MQTT topic prefix (the schema says: not empty). */
export function topicPrefixProblem(prefix: string): string | undefined {
  if (prefix === '') return undefined;
  if (/[#+\s]/.test(prefix)) return `must not contain '#', '+' or white space (got ${shownText(prefix)})`;
  if (prefix.startsWith('$')) {
    return `must not start with '$': MQTT reserves '$' topics ($SYS…) for the broker, which refuses publishes there (got ${shownText(prefix)})`;
  }
  return undefined;
}

/** The device path of an rtu bus: absolute, plain. */
export function serialPortProblem(port: string): string | undefined {
  if (placeholderIn(port) !== undefined || port === '') return undefined;
  if (!port.startsWith('/')) return `must be the absolute serial device path: write '${absoluteDevicePath(port)}' (got ${shownText(port)})`;
  if (posix.normalize(port) !== port || port.endsWith('/')) return `must be a plain absolute device path like /dev/ttyUSB0 (got ${shownText(port)})`;
  return undefined;
}

/** The device a serial path opens: its symlinks (/dev/serial/by-id/…) resolved when it exists. */
export function serialDevice(port: string): string {
  try {
    return realpathSync(port);
  } catch {
    return port; // not there now (unplugged) or not readable: compare the paths as written
  }
}
