import { generateKeyPair } from "node:crypto";
import { promisify } from "node:util";
import { randomSerial, signCertificateNative } from "@anthropic-ai/sandbox-runtime/dist/sandbox/mitm-ca.js";
import forge from "node-forge";

/**
 * The CA of one session's terminated connections (hosts with secrets), and the key its leaf certificates use.
 * Made by the monitor so that a proxy process started again serves the certificate the session already trusts;
 * both keys go to the proxy process alone. The RSA keys are generated on the thread pool: generated in line, as
 * sandbox-runtime's own generateCa and leaf minting do, each takes 40 to 200 ms of the event loop that serves
 * every session.
 */
export interface SessionCa {
  cert: string;
  key: string;
  /** The private key every leaf minted for this session uses (PEM). */
  leafKey: string;
}

const rsa = promisify(generateKeyPair);
const rsaKey = () =>
  rsa("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });

const DAY_MS = 86_400_000;

export async function makeSessionCa(validityDays = 30): Promise<SessionCa> {
  const [ca, leaf] = await Promise.all([rsaKey(), rsaKey()]);
  const { pki } = forge;
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(ca.publicKey);
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = new Date(Date.now() - DAY_MS);
  cert.validity.notAfter = new Date(Date.now() + validityDays * DAY_MS);
  const subject = [
    { name: "commonName", value: "sandbox egress proxy (one session)" },
    { name: "organizationName", value: "sandbox-mcp" },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", critical: true, keyCertSign: true, cRLSign: true, digitalSignature: true },
    { name: "subjectKeyIdentifier" },
  ]);
  // forge's signing is plain JavaScript; sandbox-runtime signs with Node's crypto instead.
  signCertificateNative(cert, ca.privateKey);
  return { cert: pki.certificateToPem(cert), key: ca.privateKey, leafKey: leaf.privateKey };
}

/** The leaf key pair as forge holds it (what sandbox-runtime's MitmCA keeps in `leafKeyPair`). */
export function leafKeyPair(pem: string): forge.pki.rsa.KeyPair {
  const privateKey = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  return { privateKey, publicKey: forge.pki.setRsaPublicKey(privateKey.n, privateKey.e) };
}
