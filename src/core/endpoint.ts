/**
 * Host names, IP literals, ports and broker URLs as the config writes them:
 * checked here once, so that what the loader accepts is what `new URL`, mqtt.js,
 * `net.connect` and the firewall read the same way (the firewall's
 * `brokerEndpoint` gives the same host and port as `parseBrokerUrl`).
 */
import { isIPv4, isIPv6 } from 'node:net';

/** Schemes mqtt.js speaks over a plain TCP or a TLS socket (WebSocket transports are not supported). */
export const PLAIN_SCHEMES = ['mqtt', 'tcp'] as const;
export const TLS_SCHEMES = ['mqtts', 'tls', 'ssl'] as const;
const SCHEMES: readonly string[] = [...PLAIN_SCHEMES, ...TLS_SCHEMES];

export interface BrokerEndpoint {
  readonly scheme: string;
  readonly tls: boolean;
  /** An IPv6 literal without its brackets. */
  readonly host: string;
  readonly port: number;
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

const fail = <T>(problem: string): Parsed<T> => ({ ok: false, problem });

/** The `${NAME}` of a text that looks like an environment variable placeholder, if any. */
export function placeholderIn(text: string): string | undefined {
  return /\$\{[^}]*\}?/.exec(text)?.[0];
}

/** The hint for a placeholder: Guardian reads the file as it is. */
export function placeholderProblem(placeholder: string): string {
  return `'${placeholder}' is not expanded: Guardian does not substitute environment variables in its config; write the value itself (or generate the file, e.g. with envsubst)`;
}

const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** Why a host name or IP literal (IPv6 without brackets) is not one, or undefined when it is. */
export function hostProblem(host: string): string | undefined {
  const placeholder = placeholderIn(host);
  if (placeholder !== undefined) return placeholderProblem(placeholder);
  if (host === '') return 'has no host';
  if (host.includes('%')) return `'${host}' has a zone id or '%': name the address without it`;
  if (isIPv4(host) || isIPv6(host)) return undefined;
  if (/^\[.*\]$/.test(host)) return `'${host}': write an IPv6 address without brackets here`;
  if (/[^\x21-\x7e]/.test(host)) return `'${host}' is not a host name: write an international name in its ASCII (xn--) form, without spaces`;
  if (host.includes(':')) return `'${host}' is not a host name or IP address (a port goes in its own setting)`;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  const labels = name.split('.');
  if (name.length > 253 || !labels.every((l) => LABEL.test(l))) {
    return `'${host}' is not a host name (letters, digits, '-' and '_' in dot-separated labels of 1-63 characters) or IP address`;
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return `'${host}' is not a valid IPv4 address`;
  return undefined;
}

/** A TCP port written in a URL: digits only, 1-65535. */
export function portProblem(text: string): string | undefined {
  const placeholder = placeholderIn(text);
  if (placeholder !== undefined) return placeholderProblem(placeholder);
  if (text === '') return "has ':' but no port after it";
  if (!/^[0-9]+$/.test(text)) return `port '${text}' must be digits only (1-65535)`;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? undefined : `port ${text} is out of range (1-65535)`;
}

const EXAMPLE = 'write it like mqtt://host:1883 or mqtts://host:8883';

/** `host`, `host:port`, `[v6]` or `[v6]:port` → the host and the port text (undefined: no port). */
function splitAuthority(authority: string): Parsed<{ host: string; port: string | undefined }> {
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) return fail(`the IPv6 address has no closing ']'; ${EXAMPLE}`);
    const rest = authority.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return fail(`unexpected '${rest}' after the IPv6 address; ${EXAMPLE}`);
    const host = authority.slice(1, close);
    if (host.includes('%') || !isIPv6(host)) return fail(`'[${host}]' is not an IPv6 address`);
    return { ok: true, value: { host, port: rest === '' ? undefined : rest.slice(1) } };
  }
  const colon = authority.lastIndexOf(':');
  if (colon >= 0 && authority.indexOf(':') !== colon) return fail(`an IPv6 address goes in brackets, like mqtt://[${authority}]:1883`);
  return { ok: true, value: colon < 0 ? { host: authority, port: undefined } : { host: authority.slice(0, colon), port: authority.slice(colon + 1) } };
}

/**
 * A broker URL: `scheme://host[:port][/]`, scheme one of mqtt, tcp (plain) or
 * mqtts, tls, ssl (TLS); default ports 1883 and 8883. User info, a path, a query
 * or a fragment are refused (the config says why for credentials). Whatever this
 * accepts, `new URL` parses to the same host and port.
 */
export function parseBrokerUrl(url: string): Parsed<BrokerEndpoint> {
  const placeholder = placeholderIn(url);
  if (placeholder !== undefined) return fail(placeholderProblem(placeholder));
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(url);
  if (m === null) return fail(`has no scheme; ${EXAMPLE}`);
  const [, scheme = '', rest = ''] = m;
  if (scheme === 'ws' || scheme === 'wss') return fail(`MQTT over WebSocket (${scheme}://) is not supported; ${EXAMPLE}`);
  if (!SCHEMES.includes(scheme)) return fail(`unsupported scheme '${scheme}://' (mqtt, tcp; mqtts, tls, ssl for TLS); ${EXAMPLE}`);
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const tail = end < 0 ? '' : rest.slice(end);
  if (authority.includes('@')) return fail("must not contain a user name or password ('user:pass@')");
  if (tail !== '' && tail !== '/' && !/^\/?[?#]/.test(tail)) return fail(`must not have a path ('${tail}'); ${EXAMPLE}`);
  if (/^\/?[?#]/.test(tail)) return fail("must not have a query or fragment ('?…', '#…')");
  const split = splitAuthority(authority);
  if (!split.ok) return split;
  const { host, port } = split.value;
  const badHost = hostProblem(host);
  if (badHost !== undefined) return fail(badHost === 'has no host' ? `has no host; ${EXAMPLE}` : badHost);
  const badPort = port === undefined ? undefined : portProblem(port);
  if (badPort !== undefined) return fail(badPort);
  const tls = (TLS_SCHEMES as readonly string[]).includes(scheme);
  return { ok: true, value: { scheme, tls, host, port: port === undefined ? (tls ? 8883 : 1883) : Number(port) } };
}
