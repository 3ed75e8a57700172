import { cp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { z } from "zod";
import { SandboxError } from "../../src/protocol/errors.ts";
import type { CreateSessionRequest, Limits, Session } from "../../src/protocol/schemas.ts";
import { CreateSessionRequest as CreateSessionSchema } from "../../src/protocol/schemas.ts";
import type { SecretBook } from "../egress/secrets.ts";
import type { SessionRuntime } from "../exec/types.ts";
import { adoptMonitorFiles } from "../jail/host-uid.ts";
import type { Jail, Jailer } from "../jail/types.ts";
import { OwnerSlots } from "./owner-slots.ts";
import { sessionEgress } from "./session-egress.ts";
import { newSessionId } from "./session-id.ts";
import { makeDirectories, type SessionPaths, sessionPaths } from "./session-paths.ts";
import type { SessionRecord, SessionStore } from "./session-store.ts";
import { expiresAt, toSession } from "./session-view.ts";
import { SparePool } from "./spare-pool.ts";
import type { TemplateDeps } from "./template-deps.ts";
import { assertTemplate } from "./templates.ts";

export interface SessionServiceOptions {
  store: SessionStore;
  jailer: Jailer;
  /** Sessions live in `<dataDir>/sessions/<id>/{workspace,home,run}`. */
  dataDir: string;
  templatesDir: string;
  defaults: { idleTtlSeconds: number; maxLifetimeSeconds: number; limits: Limits };
  maxSessions: number;
  /** Sessions opened ahead of time for `create` to take (network "deny", default limits); 0 for none. */
  spareSessions?: number;
  /**
   * Called once a session's directories are made (a spare's too, while it waits): per-session state that its first
   * command would otherwise set up on its way.
   */
  onOpen?: (sessionId: string) => void;
  /**
   * Called while a session is destroyed (or a spare discarded), before its directory goes: stop processes, drop logs
   * and errors.
   */
  onDestroy: (sessionId: string) => Promise<void>;
  /** The operator's secrets that allowlist sessions may name; none when absent. */
  secrets?: SecretBook;
  /** Pre-installed template dependencies, put into sessions made from a template (template-deps.ts). */
  templateDeps?: TemplateDeps | null;
}

/** Writes of `last_active_at` are coalesced to one per session per this many ms. */
const TOUCH_EVERY_MS = 1_000;

/**
 * Session lifecycle: create (workspace, template, jail), look up, touch, expire and destroy. A session's jail
 * (network namespace, cgroups, agent) is opened when the session is created, and again lazily after a monitor
 * restart.
 */
export class SessionService {
  readonly #options: SessionServiceOptions;
  readonly #jails = new Map<string, Promise<Jail>>();
  readonly #touched = new Map<string, number>();
  readonly #destroying = new Map<string, Promise<boolean>>();
  /** Aborted when the session is destroyed, so that commands still running in it end. */
  readonly #lifetimes = new Map<string, AbortController>();
  readonly #spares: SparePool;
  /** Sessions being created per owner, not yet recorded. */
  readonly #slots: OwnerSlots;

  constructor(options: SessionServiceOptions) {
    this.#options = options;
    this.#slots = new OwnerSlots((owner) => options.store.list(owner).length);
    this.#spares = new SparePool({
      size: options.spareSessions ?? 0,
      open: async (id) => {
        const paths = this.paths(id);
        makeDirectories(paths);
        this.#options.onOpen?.(id);
        const jail = await this.#options.jailer.open({
          sessionId: id,
          hostPath: paths.workspace,
          runDir: paths.run,
          homePath: paths.home,
          network: "deny",
          limits: options.defaults.limits,
        });
        jail.warm();
        return jail;
      },
      discard: async (id) => {
        try {
          await this.#options.onDestroy(id);
        } finally {
          await rm(this.paths(id).root, { recursive: true, force: true });
        }
      },
    });
  }

  /**
   * Removes session directories without a record (spares and half-created sessions of a monitor that died) and
   * the temp files of writes a dead monitor left (never under a final name: see `writeAtomically`), then opens
   * the spares. Call once at start.
   */
  async start(): Promise<void> {
    const root = join(this.#options.dataDir, "sessions");
    for (const name of await readdir(root).catch(() => [])) {
      if (!this.#options.store.get(name)) await rm(join(root, name), { recursive: true, force: true });
      else await rm(this.paths(name).writeTemp, { recursive: true, force: true });
    }
    this.#spares.refill();
  }

  /**
   * Creates a session. `populate` fills a new session's directories before its record exists (a fork's workspace
   * and history), in place of the template's files.
   */
  async create(input: CreateSessionRequest, options: CreateOptions = {}): Promise<Session> {
    const request = CreateSessionSchema.parse(input);
    const { store, maxSessions } = this.#options;
    if (store.count() >= maxSessions) {
      throw new SandboxError(
        "at_capacity",
        `this sandbox host holds its maximum of ${maxSessions} sessions`,
        "destroy sessions you no longer need, or retry later",
      );
    }
    // Checked and counted before the first await: concurrent creations each see the ones before them.
    const release = this.#slots.hold(request.owner ?? null, request.maxOwnerSessions);
    try {
      return await this.#create(request, release, options.populate);
    } finally {
      release();
    }
  }

  /** Sessions `owner` holds, counting those being created. */
  held(owner: string): number {
    return this.#slots.held(owner);
  }

  async #create(
    request: z.output<typeof CreateSessionSchema>,
    recorded: () => void,
    populate: CreateOptions["populate"],
  ): Promise<Session> {
    const { store, defaults } = this.#options;
    const template = request.template && request.template !== "empty" ? request.template : null;
    if (template && !populate) await assertTemplate(this.#options.templatesDir, template);
    // Secrets the session may not use are refused before anything is made.
    if (typeof request.network === "object") {
      sessionEgress(this.#options.secrets, request.network, request.owner ?? null, true);
    }
    const spare = request.id === undefined && request.network === "deny" ? this.#spares.take() : null;
    const id = spare?.id ?? request.id ?? newSessionId();
    if (store.get(id)) throw new SandboxError("conflict", `session ${id} already exists`);
    const now = Date.now();
    const record: SessionRecord = {
      id,
      owner: request.owner ?? null,
      network:
        typeof request.network === "string"
          ? request.network
          : { ...request.network, allow: request.network.allow.map((rule) => rule.toLowerCase()) },
      env: request.env,
      template,
      createdAt: now,
      lastActiveAt: now,
      idleTtlSeconds: request.idleTtlSeconds ?? defaults.idleTtlSeconds,
      maxLifetimeSeconds: Math.min(
        request.maxLifetimeSeconds ?? defaults.maxLifetimeSeconds,
        defaults.maxLifetimeSeconds,
      ),
      limits: defaults.limits,
    };
    const paths = this.paths(id);
    try {
      // Synchronous: cheap, and each asynchronous step would wait its turn behind every other request.
      makeDirectories(paths);
      if (populate) await populate(paths);
      else if (template) {
        await cp(join(this.#options.templatesDir, template), paths.workspace, { recursive: true });
        await this.#options.templateDeps?.populate(template, paths.workspace);
      }
      // A spare's jail gave its workspace to the session's host uid already: what was just copied goes to it too.
      if (spare && (populate || template)) await adoptMonitorFiles(paths.workspace);
    } catch (error) {
      // No record yet: what the spare opened (its jail, its log state) goes with its directory.
      if (spare) {
        await (await spare.jail.catch(() => null))?.close();
        await this.#options.onDestroy(id).catch(() => {});
      }
      await rm(paths.root, { recursive: true, force: true });
      throw error;
    }
    if (spare) this.#jails.set(id, spare.jail);
    store.insert(record);
    if (!spare) this.#options.onOpen?.(id);
    recorded();
    try {
      const jail = await this.#jail(record);
      // Most sessions run a command soon after they are created: have the jail ready by then.
      jail.warm();
      return this.#toSession(record, jail);
    } catch (error) {
      await this.destroy(id);
      throw error;
    }
  }

  /** The session, or `not_found`. Expired sessions are destroyed on sight. */
  async get(id: string): Promise<Session> {
    const record = await this.#live(id);
    return this.#toSession(record, await this.#jailIfOpen(id));
  }

  async list(owner?: string): Promise<Session[]> {
    const sessions: Session[] = [];
    for (const record of this.#options.store.list(owner)) {
      if (this.#expired(record, Date.now())) continue;
      sessions.push(this.#toSession(record, await this.#jailIfOpen(record.id)));
    }
    return sessions;
  }

  /** Everything a command or process of the session needs; marks the session active. */
  async runtime(id: string): Promise<SessionRuntime & { hostPath: string; destroyed: AbortSignal }> {
    const record = await this.#live(id);
    this.#touch(record);
    const jail = await this.#jail(record);
    const { store } = this.#options;
    return {
      id,
      jail,
      env: record.env,
      limits: record.limits,
      hostPath: this.paths(id).workspace,
      destroyed: this.#lifetime(id).signal,
      nextProcessId: (kind) => store.nextProcessId(id, kind),
    };
  }

  /** The workspace directory on the host; marks the session active. */
  async workspace(id: string): Promise<string> {
    const record = await this.#live(id);
    this.#touch(record);
    return this.paths(id).workspace;
  }

  /** A session's directories (session-paths.ts). */
  paths(id: string): SessionPaths {
    return sessionPaths(this.#options.dataDir, id);
  }

  /** Kills every process, closes the jail, removes the workspace. False when there was no such session. */
  destroy(id: string): Promise<boolean> {
    const pending = this.#destroying.get(id);
    if (pending) return pending;
    const work = this.#destroy(id).finally(() => this.#destroying.delete(id));
    this.#destroying.set(id, work);
    return work;
  }

  /** Destroys every session past its idle TTL or maximum lifetime; returns their ids. */
  async reap(now = Date.now()): Promise<string[]> {
    const expired = this.#options.store.list().filter((record) => this.#expired(record, now));
    for (const record of expired) await this.destroy(record.id);
    return expired.map((record) => record.id);
  }

  /** Every recorded session's id. */
  ids(): string[] {
    return this.#options.store.list().map((record) => record.id);
  }

  count(): number {
    return this.#options.store.count();
  }

  /** Closes every open jail (network namespaces, helpers) without touching workspaces or records. */
  async close(): Promise<void> {
    await this.#spares.close();
    const jails = [...this.#jails.values()];
    this.#jails.clear();
    await Promise.allSettled(jails.map(async (jail) => (await jail).close()));
  }

  async #destroy(id: string): Promise<boolean> {
    const record = this.#options.store.get(id);
    if (!record) return false;
    this.#lifetimes.get(id)?.abort();
    this.#lifetimes.delete(id);
    await this.#options.onDestroy(id);
    const jail = this.#jails.get(id);
    this.#jails.delete(id);
    if (jail) await (await jail.catch(() => undefined))?.close();
    this.#options.store.delete(id);
    this.#touched.delete(id);
    await rm(this.paths(id).root, { recursive: true, force: true });
    return true;
  }

  #lifetime(id: string): AbortController {
    let lifetime = this.#lifetimes.get(id);
    if (!lifetime) {
      lifetime = new AbortController();
      this.#lifetimes.set(id, lifetime);
    }
    return lifetime;
  }

  async #live(id: string): Promise<SessionRecord> {
    const record = this.#options.store.get(id);
    if (record && !this.#expired(record, Date.now())) return record;
    if (record) await this.destroy(id);
    throw new SandboxError(
      "not_found",
      `no session ${id}`,
      "create a session with create_session, or list yours with list_sessions",
    );
  }

  #expired(record: SessionRecord, now: number): boolean {
    return now >= expiresAt(this.#lastActive(record), record);
  }

  #lastActive(record: SessionRecord): SessionRecord {
    const touched = this.#touched.get(record.id);
    return touched && touched > record.lastActiveAt ? { ...record, lastActiveAt: touched } : record;
  }

  #touch(record: SessionRecord): void {
    const now = Date.now();
    this.#touched.set(record.id, now);
    if (now - record.lastActiveAt < TOUCH_EVERY_MS) return;
    // Best effort: the time is held in memory too, and a full disk must not fail a read or a command.
    try {
      this.#options.store.touch(record.id, now);
    } catch (error) {
      console.error(`[sessions] cannot record the activity of ${record.id}: ${(error as Error).message}`);
    }
  }

  #jail(record: SessionRecord): Promise<Jail> {
    let jail = this.#jails.get(record.id);
    if (!jail) {
      const paths = this.paths(record.id);
      jail = (async () => {
        makeDirectories(paths, false);
        return this.#options.jailer.open({
          sessionId: record.id,
          hostPath: paths.workspace,
          runDir: paths.run,
          homePath: paths.home,
          network: record.network,
          ...(typeof record.network === "object"
            ? { egress: sessionEgress(this.#options.secrets, record.network, record.owner, false) }
            : {}),
          limits: record.limits,
        });
      })();
      jail.catch(() => this.#jails.delete(record.id));
      this.#jails.set(record.id, jail);
    }
    return jail;
  }

  async #jailIfOpen(id: string): Promise<Jail | undefined> {
    return this.#jails.get(id)?.catch(() => undefined);
  }

  #toSession(record: SessionRecord, jail: Jail | undefined): Session {
    return toSession(
      this.#lastActive(record),
      jail,
      this.#options.jailer.capabilities,
      this.paths(record.id).workspace,
    );
  }
}

export interface CreateOptions {
  populate?: (paths: SessionPaths) => Promise<void>;
}
