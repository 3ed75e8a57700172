import { z } from "zod";

/** Stdin and terminals of commands and supervised processes: how they are asked for and what is written to them. */

/** A pseudo-terminal's size: the program sees it as its window (TIOCGWINSZ, `stty size`). */
export const TerminalSize = z.object({
  cols: z.number().int().min(20).max(500).default(120),
  rows: z.number().int().min(5).max(200).default(40),
});
export type TerminalSize = z.infer<typeof TerminalSize>;

/** How a command's stdin is set up; stdin is /dev/null unless the caller asks for one of these. */
export const inputFields = {
  stdin: z.boolean().default(false).describe("give the command a stdin pipe that input requests write to"),
  tty: TerminalSize.optional().describe(
    "run the command under a pseudo-terminal of this size (implies stdin)",
  ),
};

export const InputMode = z.enum(["none", "pipe", "tty"]);
export type InputMode = z.infer<typeof InputMode>;

/** Keys by name, written after `data` as a terminal would send them (Enter is \r under a terminal, \n on a pipe). */
export const KeyName = z.enum([
  "Enter",
  "Tab",
  "Escape",
  "Backspace",
  "Delete",
  "Space",
  "Up",
  "Down",
  "Left",
  "Right",
  "Home",
  "End",
  "PageUp",
  "PageDown",
  ...(Array.from({ length: 26 }, (_, i) => `Ctrl-${String.fromCharCode(65 + i)}`) as [string, ...string[]]),
]);
export type KeyName = z.infer<typeof KeyName>;

/** Input for a command or process started with stdin or a terminal. */
export const InputRequest = z.object({
  data: z
    .string()
    .max(1024 * 1024)
    .default("")
    .describe("bytes to write, base64"),
  keys: z.array(KeyName).max(200).default([]).describe("keys to press after `data`, in order"),
  close: z.boolean().default(false).describe("then close stdin (under a terminal: send end-of-file, Ctrl-D)"),
  resize: TerminalSize.optional().describe("under a terminal: its new size"),
});
export type InputRequest = z.input<typeof InputRequest>;

export const InputResult = z.object({ written: z.number().int(), closed: z.boolean() });
export type InputResult = z.infer<typeof InputResult>;
