import { z } from "zod";
import { Isolation } from "./sessions.ts";

/** The monitor's health: its version, load and the isolation it can give sessions. */

export const Health = z.object({
  status: z.literal("ok"),
  version: z.string(),
  uptimeSeconds: z.number(),
  sessions: z.number().int(),
  processes: z.object({ running: z.number().int(), total: z.number().int() }),
  isolation: z.object({
    available: Isolation,
    network: z.enum(["slirp4netns", "none"]),
    warnings: z.array(z.string()),
  }),
});
export type Health = z.infer<typeof Health>;
