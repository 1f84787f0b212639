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
 * Does this text hold a URL with a user name or password (`scheme://user:pass@host`)?
 * Any '@' after a scheme counts: a password written unencoded may itself contain
 * '@', '/', ':', quotes or spaces.
 */
export function hasUserinfo(text: string): boolean {
  const scheme = SCHEME.exec(text);
  return scheme !== null && text.indexOf('@', scheme.index + scheme[0].length) >= 0;
}

/**
 * A URL, or a text with URLs in it (an error message), with everything between
 * the first scheme (`mqtt://`) and the last '@' after it replaced by ***. It may
 * hide more than the credentials (a later '@' in the text), never less; a text
 * without a scheme followed by '@' comes back unchanged.
 */
export function redactUrl(text: string): string {
  const scheme = SCHEME.exec(text);
  if (scheme === null) return text;
  const start = scheme.index + scheme[0].length;
  const at = text.lastIndexOf('@');
  return at < start ? text : `${text.slice(0, start)}${REDACTED}${text.slice(at)}`;
}
