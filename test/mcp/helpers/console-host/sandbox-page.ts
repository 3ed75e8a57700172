// The sandbox proxy, on its own origin: loads the App's HTML into an inner frame under the CSP this page was
// served with (built from the resource's _meta.ui.csp) and relays messages between the host and the App.
const hostOrigin = new URL(document.referrer).origin;
const inner = document.createElement("iframe");
inner.id = "view";
inner.style.cssText = "display:block;width:100%;height:100vh;border:0";
inner.setAttribute("sandbox", "allow-scripts allow-same-origin allow-forms");
document.body.append(inner);

window.addEventListener("message", (event) => {
  if (event.source === window.parent && event.origin === hostOrigin) {
    if (event.data?.method === "ui/notifications/sandbox-resource-ready") {
      // srcdoc: the App gets this page's origin and inherits its CSP.
      inner.srcdoc = String(event.data.params?.html ?? "");
      return;
    }
    inner.contentWindow?.postMessage(event.data, "*");
  } else if (event.source === inner.contentWindow) {
    window.parent.postMessage(event.data, hostOrigin);
  }
});
window.parent.postMessage(
  { jsonrpc: "2.0", method: "ui/notifications/sandbox-proxy-ready", params: {} },
  hostOrigin,
);
