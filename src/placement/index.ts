export { hash64, jumpHash, mix64 } from "./hash.ts";
export {
  hashedPoolIndex,
  locateSession,
  newPoolPlacement,
  newSoloPlacement,
  newTenantPlacement,
  newTenantTag,
  type Placement,
  type PlacementConfig,
  type PlacementMode,
  POOL_CONTAINER_PREFIX,
  parsePlacementConfig,
  poolContainerName,
  poolIndexForKey,
  soloContainerName,
  type Tenancy,
  type TenancyPolicy,
  tenancyFor,
  tenantContainerName,
} from "./placement.ts";
export {
  decodeSessionId,
  encodeSessionId,
  MAX_POOL_SIZE,
  randomDigits,
  type SessionIdParts,
} from "./session-id.ts";
