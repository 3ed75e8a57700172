export { createCloudflareDeployer } from "./deployer.ts";
export { DeployerContainer, type DeployerEnv } from "./deployer-container.ts";
export {
  ForwardingDeployer,
  type ForwardingDeployerEnv,
  type ForwardingEnv,
  ForwardingSandbox,
  forwardToMonitor,
} from "./forwarding.ts";
export { type RegistryEnv, SandboxRegistry } from "./registry.ts";
export {
  containerShardName,
  principalIndexName,
  RegistryClient,
  type RegistryRecord,
} from "./registry-client.ts";
export {
  createRoutingFetch,
  type RoutingEnv,
  type RoutingOptions,
  snapshotSession,
} from "./routing-fetch.ts";
export type {
  DurableObjectNamespaceLike,
  DurableObjectStateLike,
  DurableObjectStubLike,
  R2BucketLike,
} from "./routing-fetch-bindings.ts";
export {
  type ContainerLifecycle,
  MONITOR_DATA_DIR,
  MONITOR_PORT,
  SandboxContainer,
} from "./sandbox-container.ts";
export { DEFAULT_SNAPSHOT_DEBOUNCE, type SnapshotDebounce } from "./snapshots.ts";
