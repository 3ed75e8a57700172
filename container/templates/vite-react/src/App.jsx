import { useState } from "react";

export default function App() {
  const [count, setCount] = useState(0);
  return (
    <main style={{ fontFamily: "system-ui, sans-serif", padding: "2rem" }}>
      <h1>Vite + React</h1>
      <button type="button" onClick={() => setCount((n) => n + 1)}>
        count is {count}
      </button>
      <p>
        Edit <code>src/App.jsx</code> and save: the page updates in place.
      </p>
    </main>
  );
}
