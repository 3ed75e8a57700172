export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/health") return Response.json({ ok: true });
    return new Response("Hello from a Worker\n", { headers: { "content-type": "text/plain; charset=utf-8" } });
  },
};
