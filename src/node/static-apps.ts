import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract } from "tar";
import { z } from "zod";
import { SandboxError } from "../protocol/errors.ts";

/** App names become URL path segments (and could become subdomains): DNS-label rules. */
export const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const DEPLOYMENT_ID = /^d[a-z0-9]{6,40}$/;

/** Deployments kept per app; older ones are pruned when a new one lands. */
export const MAX_DEPLOYMENTS = 20;

export interface StaticAppsOptions {
  /** `DATA_DIR/deployments`. */
  root: string;
  /** Caps on one deployment. */
  maxBytes?: number;
  maxFiles?: number;
}

const Deployment = z.object({
  id: z.string(),
  createdAt: z.string(),
  sessionId: z.string(),
  files: z.number().int(),
  bytes: z.number().int(),
});
export type Deployment = z.infer<typeof Deployment>;

const AppRecord = z.object({
  name: z.string(),
  owner: z.string(),
  deployments: z.array(Deployment).describe("newest first"),
});
export type AppRecord = z.infer<typeof AppRecord>;

/**
 * Immutable static deployments on disk: `root/<name>/app.json` records the owner and the deployments, and
 * `root/<name>/<deploymentId>/` holds the files of each. A name belongs to the principal that first published it.
 */
export class StaticApps {
  readonly root: string;
  readonly #maxBytes: number;
  readonly #maxFiles: number;
  /** One publish per app name at a time, so that app.json updates do not interleave. */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(options: StaticAppsOptions) {
    this.root = options.root;
    this.#maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.#maxFiles = options.maxFiles ?? 20_000;
  }

  async get(name: string): Promise<AppRecord | null> {
    if (!APP_NAME.test(name)) return null;
    try {
      return AppRecord.parse(JSON.parse(await readFile(join(this.root, name, "app.json"), "utf8")));
    } catch {
      return null;
    }
  }

  /** Fails early, before a build runs, when `principal` may not publish under `name`. */
  async assertPublishable(name: string, principal: string): Promise<void> {
    if (!APP_NAME.test(name)) {
      throw new SandboxError(
        "bad_request",
        `"${name}" is not a valid app name`,
        "use 1 to 63 lowercase letters, digits or hyphens, starting and ending with a letter or digit",
      );
    }
    const record = await this.get(name);
    if (record && record.owner !== principal) {
      throw new SandboxError(
        "conflict",
        `the app name "${name}" is already taken`,
        "choose another name for this deployment",
      );
    }
  }

  /** Extracts a tar archive as a new deployment of `name` and makes it the live one. */
  publish(
    name: string,
    principal: string,
    sessionId: string,
    archive: ReadableStream<Uint8Array>,
  ): Promise<{ app: AppRecord; deployment: Deployment }> {
    const previous = this.#locks.get(name) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => this.#publish(name, principal, sessionId, archive));
    this.#locks.set(name, next);
    // Handled both ways: a `finally` left dangling would be an unhandled rejection when a publish fails, and
    // that ends the process, with every session of every principal.
    const release = () => {
      if (this.#locks.get(name) === next) this.#locks.delete(name);
    };
    next.then(release, release);
    return next;
  }

  async #publish(name: string, principal: string, sessionId: string, archive: ReadableStream<Uint8Array>) {
    await this.assertPublishable(name, principal);
    const appDir = join(this.root, name);
    const id = `d${Date.now().toString(36)}${randomBytes(4).toString("hex")}`;
    const staging = join(appDir, `.staging-${id}`);
    await mkdir(staging, { recursive: true });
    let files = 0;
    let bytes = 0;
    let refused: SandboxError | null = null;
    try {
      await pipeline(
        Readable.fromWeb(archive as import("node:stream/web").ReadableStream<Uint8Array>),
        extract({
          cwd: staging,
          strict: true,
          // Only plain files and directories: a symlink or hard link could point outside the deployment.
          filter: (_path, entry) => {
            const type = "type" in entry ? entry.type : "File";
            if (type !== "File" && type !== "OldFile" && type !== "Directory") return false;
            if (type !== "Directory") {
              files += 1;
              bytes += entry.size ?? 0;
            }
            if (files > this.#maxFiles || bytes > this.#maxBytes) {
              refused ??= new SandboxError(
                "payload_too_large",
                `the output is larger than ${this.#maxFiles} files or ${this.#maxBytes} bytes`,
                "deploy a smaller output directory (the build output, not the project)",
              );
              return false;
            }
            return true;
          },
        }),
      );
      if (refused) throw refused;
      if (files === 0) {
        throw new SandboxError(
          "bad_request",
          "the output directory is empty",
          "check outputDir and the build",
        );
      }
      await rename(staging, join(appDir, id));
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      // An empty directory exports as an empty stream, which is no archive at all.
      if (files === 0 && (error as { code?: string }).code === "TAR_BAD_ARCHIVE") {
        throw new SandboxError(
          "bad_request",
          "the output directory is empty",
          "check outputDir and the build",
        );
      }
      throw error;
    }
    const deployment: Deployment = { id, createdAt: new Date().toISOString(), sessionId, files, bytes };
    const record = (await this.get(name)) ?? { name, owner: principal, deployments: [] };
    record.deployments.unshift(deployment);
    const pruned = record.deployments.splice(MAX_DEPLOYMENTS);
    await this.#writeRecord(record);
    for (const old of pruned) await rm(join(appDir, old.id), { recursive: true, force: true });
    return { app: record, deployment };
  }

  async #writeRecord(record: AppRecord) {
    const file = join(this.root, record.name, "app.json");
    const temp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(temp, `${JSON.stringify(record, null, 2)}\n`);
    await rename(temp, file);
  }

  /** The directory of a deployment (`latest` when no id), or null. */
  async directory(name: string, deploymentId?: string): Promise<string | null> {
    const record = await this.get(name);
    if (!record) return null;
    if (deploymentId !== undefined && !DEPLOYMENT_ID.test(deploymentId)) return null;
    const deployment = deploymentId
      ? record.deployments.find((candidate) => candidate.id === deploymentId)
      : record.deployments[0];
    return deployment ? join(this.root, name, deployment.id) : null;
  }
}
