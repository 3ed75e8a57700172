import { randomBytes } from "node:crypto";

/** 128 random bits as 25 base-36 characters: unguessable and safe in a DNS label (previews use it). */
export function newSessionId(): string {
  const value = BigInt(`0x${randomBytes(16).toString("hex")}`);
  return value.toString(36).padStart(25, "0");
}
