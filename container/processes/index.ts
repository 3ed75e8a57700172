export { type ProcessRow, ProcessTable } from "./process-table.ts";
export { type ParsedStartRequest, Supervisor, type SupervisorOptions } from "./supervisor.ts";
