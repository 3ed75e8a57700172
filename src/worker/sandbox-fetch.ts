import type { FetchLike } from "../protocol/transport.ts";

const SESSION_PATH = /^\/v1\/sessions\/([a-z0-9]{8,63})$/;

/**
 * Wraps the pool's fetch so that destroying a session revokes its previews, whichever tool or route destroyed
 * it: the revocation rides on the one protocol call every destroy makes.
 */
export function revokingPreviewsOnDestroy(inner: FetchLike, previews: Env["PREVIEWS"]): FetchLike {
  return async (request) => {
    const destroyed =
      request.method === "DELETE" ? SESSION_PATH.exec(new URL(request.url).pathname)?.[1] : undefined;
    const response = await inner(request);
    if (destroyed && (response.ok || response.status === 404)) {
      await previews.getByName(destroyed).revoke();
    }
    return response;
  };
}
