import { createServer } from "node:http";

// The sandbox reaches the app on the port it was started with: run_commands background with PORT=3000 and
// port 3000, then deploy target "preview" gives a URL for it.
const port = Number(process.env.PORT ?? 3000);

const server = createServer((request, response) => {
  if (request.url === "/health") {
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ ok: true }));
    return;
  }
  response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  response.end("<!doctype html><title>app</title><h1>Hello from the sandbox</h1>\n");
});

server.listen(port, "0.0.0.0", () => {
  console.log(`listening on http://0.0.0.0:${port}`);
});
