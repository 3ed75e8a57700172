/**
 * Drops Node's one-time "SQLite is an experimental feature" warning, which every start of the server and the
 * monitor printed although node:sqlite is what the project relies on; every other warning is printed as before.
 * It must run before node:sqlite is first loaded, which db.ts does when it opens the database: entry points call
 * it on their first line.
 */
export function quietSqliteWarning(): void {
  const emit = process.emitWarning;
  const quiet = (warning: string | Error, ...rest: unknown[]): void => {
    const type =
      warning instanceof Error
        ? warning.name
        : typeof rest[0] === "string"
          ? rest[0]
          : (rest[0] as { type?: string })?.type;
    const message = warning instanceof Error ? warning.message : warning;
    if (type === "ExperimentalWarning" && message.startsWith("SQLite is an experimental feature")) return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  };
  process.emitWarning = quiet as typeof process.emitWarning;
}
