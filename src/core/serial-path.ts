/**
 * Serial device paths as written in the config and the manifest: Linux opens a
 * serial line by its absolute path under /dev.
 */

/** The absolute path meant by a relative device name: `ttyS0` → /dev/ttyS0, `dev/ttyUSB0` → /dev/ttyUSB0. */
export function absoluteDevicePath(name: string): string {
  const bare = name.replace(/^(\.\/)+/, '');
  return bare.startsWith('dev/') ? `/${bare}` : `/dev/${bare}`;
}
