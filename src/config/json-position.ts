/**
 * Where JSON.parse gave up, for the messages of Node 20's V8 that do not say
 * (`Unexpected token 'x', "…" is not valid JSON`): a scanner that follows the
 * JSON grammar (RFC 8259) and stops at the first character that cannot
 * continue it. It only locates: JSON.parse alone decides what is valid.
 */

const WS = new Set([' ', '\t', '\n', '\r']);
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Scanner {
  i = 0;

  constructor(readonly text: string) {}

  ws(): void {
    while (WS.has(this.text[this.i] ?? '')) this.i++;
  }

  string(): boolean {
    this.i++; // the opening quote
    for (;;) {
      const c = this.text[this.i];
      if (c === undefined || c.charCodeAt(0) < 0x20) return false;
      if (c === '"') { this.i++; return true; }
      if (c !== '\\') { this.i++; continue; }
      const e = this.text[this.i + 1] ?? '';
      if (ESCAPES.has(e)) this.i += 2;
      else if (e === 'u' && /^[0-9A-Fa-f]{4}$/.test(this.text.slice(this.i + 2, this.i + 6))) this.i += 6;
      else { this.i++; return false; }
    }
  }

  /** `{…}` or `[…]`: members separated by commas, no trailing comma. */
  container(close: '}' | ']'): boolean {
    this.i++;
    this.ws();
    if (this.text[this.i] === close) { this.i++; return true; }
    for (;;) {
      this.ws();
      if (close === '}') {
        if (this.text[this.i] !== '"' || !this.string()) return false;
        this.ws();
        if (this.text[this.i] !== ':') return false;
        this.i++;
      }
      if (!this.value()) return false;
      this.ws();
      const c = this.text[this.i];
      this.i += c === ',' || c === close ? 1 : 0;
      if (c === close) return true;
      if (c !== ',') return false;
    }
  }

  value(): boolean {
    this.ws();
    const c = this.text[this.i];
    if (c === '{') return this.container('}');
    if (c === '[') return this.container(']');
    if (c === '"') return this.string();
    for (const literal of ['true', 'false', 'null']) {
      if (this.text.startsWith(literal, this.i)) { this.i += literal.length; return true; }
    }
    NUMBER.lastIndex = this.i;
    if (!NUMBER.test(this.text)) return false;
    this.i = NUMBER.lastIndex;
    return true;
  }
}

/** The offset of the first character that is not valid JSON there (text.length: the text ended too soon). */
export function jsonErrorOffset(text: string): number {
  const s = new Scanner(text);
  if (s.value()) s.ws();
  return Math.min(s.i, text.length);
}
