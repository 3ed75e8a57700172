import type { KeyName } from "../../src/protocol/schemas.ts";

/**
 * The bytes a terminal sends for named keys. Arrows follow the program's cursor-key mode (DECCKM, which full-screen
 * programs switch on): `ESC O A` then, `ESC [ A` otherwise. Enter is a carriage return under a terminal, which its
 * line discipline turns into the newline a program reads; on a plain pipe nothing does, so there it is a newline.
 */
export function keyBytes(
  keys: readonly KeyName[],
  mode: { tty: boolean; applicationCursorKeys: boolean },
): Buffer {
  const cursor = mode.applicationCursorKeys ? "\x1bO" : "\x1b[";
  const named: Record<string, string> = {
    Enter: mode.tty ? "\r" : "\n",
    Tab: "\t",
    Escape: "\x1b",
    Backspace: "\x7f",
    Delete: "\x1b[3~",
    Space: " ",
    Up: `${cursor}A`,
    Down: `${cursor}B`,
    Right: `${cursor}C`,
    Left: `${cursor}D`,
    Home: `${cursor}H`,
    End: `${cursor}F`,
    PageUp: "\x1b[5~",
    PageDown: "\x1b[6~",
  };
  return Buffer.from(
    keys
      .map((key) => {
        const ctrl = /^Ctrl-([A-Z])$/.exec(key);
        return ctrl ? String.fromCharCode((ctrl[1] as string).charCodeAt(0) - 64) : (named[key] ?? "");
      })
      .join(""),
  );
}
