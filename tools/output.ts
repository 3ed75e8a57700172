/** Output shaping shared by the tools: head + tail caps and fair sharing of one character budget. */

export interface Capped {
  text: string;
  /** Characters left out of the middle. */
  omitted: number;
}

/**
 * Keeps the head and the tail of `text` within `max` characters. The tail gets the larger share because that is
 * where builds and crashes say what went wrong.
 */
export function headTail(text: string, max: number, hint = ""): Capped {
  if (text.length <= max) return { text, omitted: 0 };
  const marker = (omitted: number) => `\n… ${omitted} characters omitted${hint ? `; ${hint}` : ""} …\n`;
  const room = Math.max(0, max - marker(text.length).length);
  const head = Math.floor(room / 3);
  const tail = room - head;
  const omitted = text.length - head - tail;
  return { text: text.slice(0, head) + marker(omitted) + text.slice(text.length - tail), omitted };
}

/**
 * Splits `budget` over items of the given sizes: small items keep everything, the rest share what remains
 * evenly (water-filling), so one noisy stream cannot starve a short error message next to it.
 */
export function shareBudget(sizes: readonly number[], budget: number): number[] {
  const shares = sizes.map(() => 0);
  const order = sizes.map((size, index) => ({ size, index })).sort((a, b) => a.size - b.size);
  let left = budget;
  order.forEach(({ size, index }, position) => {
    const fair = Math.floor(left / (order.length - position));
    const share = Math.min(size, fair);
    shares[index] = share;
    left -= share;
  });
  return shares;
}

/** The last `count` lines of `text`, for short text summaries. */
export function lastLines(text: string, count: number): string {
  const lines = text.replace(/\n$/, "").split("\n");
  return lines.slice(-count).join("\n");
}

export function cutLine(line: string, max: number): string {
  return line.length <= max ? line : `${line.slice(0, max)}… (${line.length - max} more characters)`;
}

/** `1.2s`, `340ms`: durations as a model reads them. */
export function formatDuration(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms)}ms`;
}
