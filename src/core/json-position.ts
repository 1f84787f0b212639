/**
 * Where JSON.parse gave up, for the messages of Node 20's V8 that do not say
 * (`Unexpected token 'x', "…" is not valid JSON`): a scanner that follows the
 * JSON grammar (RFC 8259) and stops at the first character that cannot
 * continue it. It only locates: JSON.parse alone decides what is valid.
 */

const WS = new Set([' ', '\t', '\n', '\r']);
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);

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
      else if (e === 'u') {
        const hex = /^[0-9A-Fa-f]{0,4}/.exec(this.text.slice(this.i + 2, this.i + 6))?.[0].length ?? 0;
        this.i += 2 + hex; // a short escape stops at its first non-hex digit
        if (hex < 4) return false;
      } else { this.i++; return false; }
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
    const literal = c === 't' ? 'true' : c === 'f' ? 'false' : c === 'n' ? 'null' : undefined;
    if (literal !== undefined) return this.literal(literal);
    return this.number();
  }

  /** A literal, char by char: a mismatch is where it stops (as V8 reports it). */
  literal(word: string): boolean {
    for (const ch of word) {
      if (this.text[this.i] !== ch) return false;
      this.i++;
    }
    return true;
  }

  digits(): boolean {
    const start = this.i;
    while (/[0-9]/.test(this.text[this.i] ?? '')) this.i++;
    return this.i > start;
  }

  /** `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` */
  number(): boolean {
    if (this.text[this.i] === '-') this.i++;
    if (this.text[this.i] === '0') this.i++;
    else if (!this.digits()) return false;
    if (this.text[this.i] === '.') {
      this.i++;
      if (!this.digits()) return false;
    }
    if (this.text[this.i] === 'e' || this.text[this.i] === 'E') {
      this.i++;
      if (this.text[this.i] === '+' || this.text[this.i] === '-') this.i++;
      if (!this.digits()) return false;
    }
    return true;
  }
}

/** The offset of the first character that is not valid JSON there (text.length: the text ended too soon). */
export function jsonErrorOffset(text: string): number {
  const s = new Scanner(text);
  if (s.value()) s.ws();
  return Math.min(s.i, text.length);
}
