/**
 * Reading a config or manifest file: only a regular file of a sane size is read
 * (`/dev/zero`, a FIFO or a 2 GB log would never end or exhaust memory), and the
 * check is made on the descriptor that is read, so it cannot be swapped in between.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';

/** No config or manifest is near this; a file above it is not one. */
export const MAX_TEXT_FILE_BYTES = 1024 * 1024;

export type TextRead = { readonly ok: true; readonly text: string } | { readonly ok: false; readonly problem: string; readonly cause?: unknown };

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/** The file's text (UTF-8), or why it is not read: a message that names no path (the caller does). */
export function readTextFile(path: string, maxBytes = MAX_TEXT_FILE_BYTES): TextRead {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK); // a FIFO must not block the open
  } catch (err) {
    return { ok: false, problem: (err as Error).message, cause: err };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { ok: false, problem: `not a regular file (${kindOf(st)})` };
    if (st.size > maxBytes) return { ok: false, problem: `the file is ${st.size} bytes, more than the ${maxBytes} a config or manifest may have` };
    const text = readFileSync(fd, 'utf8');
    if (Buffer.byteLength(text) > maxBytes) return { ok: false, problem: `the file grew past ${maxBytes} bytes while it was read` };
    return { ok: true, text };
  } catch (err) {
    return { ok: false, problem: (err as Error).message, cause: err };
  } finally {
    closeSync(fd);
  }
}
