/**
 * Credentials never live in URLs: the config refuses a URL with a user name or
 * password in it, and every URL Guardian shows (logs, error messages, the CLI)
 * goes through redactUrl first, so that one that slipped in some other way is
 * still not written anywhere.
 */

/** Shown instead of the user name and password of a URL. */
export const REDACTED = '***';

const SCHEME = /[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * Where the credentials of a URL written without `://` would start
 * (`mqtt:admin:pw@host`, `mqtt//admin:pw@host`, `admin:pw@host`): the start of
 * the word (white space, quotes and brackets end a word) holding the first ':'
 * or '//' before the last '@'. Undefined when there is none: an e-mail address
 * in a message (`admin@example.com`) is not a URL.
 */
function schemelessStart(text: string, last: number): number | undefined {
  const trigger = /:|\/\//.exec(text.slice(0, last));
  if (trigger === null) return undefined;
  const before = text.slice(0, trigger.index);
  const boundary = Math.max(...[...before.matchAll(/[\s'"`(\[<]/g)].map((m) => m.index), -1);
  return boundary + 1;
}

/** [start, end) of the part to hide, or undefined: after the first `scheme://` up to the last '@', or the schemeless form's. */
function credentialSpan(text: string): [number, number] | undefined {
  const last = text.lastIndexOf('@');
  if (last < 0) return undefined;
  const scheme = SCHEME.exec(text);
  if (scheme !== null && scheme.index + scheme[0].length <= last) return [scheme.index + scheme[0].length, last];
  const start = schemelessStart(text, last);
  return start === undefined ? undefined : [start, last];
}

/**
 * Does this text hold a URL with a user name or password (`scheme://user:pass@host`,
 * or the same without '//' or without a scheme: `mqtt:user:pass@host`, `user:pass@host`)?
 * Any '@' after a scheme counts: a password written unencoded may itself contain
 * '@', '/', ':', quotes or spaces.
 */
export function hasUserinfo(text: string): boolean {
  return credentialSpan(text) !== undefined;
}

/**
 * A URL, or a text with URLs in it (an error message), with everything between
 * the first scheme (`mqtt://`) and the last '@' after it replaced by ***; without
 * a `scheme://`, from the start of the word with the first ':' or '//' before the
 * last '@'. It may hide more than the credentials (a later '@' in the text), never
 * less; a text without such an '@' comes back unchanged.
 */
export function redactUrl(text: string): string {
  const span = credentialSpan(text);
  return span === undefined ? text : `${text.slice(0, span[0])}${REDACTED}${text.slice(span[1])}`;
}
