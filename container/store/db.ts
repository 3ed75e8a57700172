import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type * as Sqlite from "node:sqlite";
import type { DatabaseSync } from "node:sqlite";

/**
 * Opens the monitor's SQLite database in WAL mode. Every store creates its own tables; this module only owns the
 * file and the pragmas. `synchronous = NORMAL` keeps WAL commits durable across a killed process (not across power
 * loss), which is what a restart of the monitor needs.
 *
 * The monitor is its database's only user (the session store keeps its records in memory), so the database is
 * opened in exclusive locking mode: the lock is taken here and held until the monitor closes it or dies, and a second
 * monitor on the same data directory fails at once instead of sharing it. It also spares every write its file locks.
 */
export function openDatabase(dataDir: string): DatabaseSync {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, "monitor.db");
  // Loaded here rather than imported, so that an entry point can drop its experimental warning first
  // (quiet-sqlite.ts): a static import is loaded before any code of the entry runs, in a bundle too.
  const sqlite = process.getBuiltinModule("node:sqlite") as typeof Sqlite;
  const db = new sqlite.DatabaseSync(file);
  try {
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("BEGIN IMMEDIATE; COMMIT");
  } catch (error) {
    db.close();
    throw new Error(
      `cannot lock ${file} (${(error as Error).message}): another monitor or server is using the data directory ${dataDir}; stop it or choose another data directory`,
    );
  }
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA foreign_keys = ON");
  return db;
}
