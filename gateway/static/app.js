"use strict";
// The wallet page's payment code: made on this phone every 30 seconds with no network, from the keys the
// ledger gave this device once (the derivation of ledger/wallet/_paycodes.py):
//   "28" | (device number + mask(step)) mod 10^10, 10 digits | HOTP-style truncation of HMAC-SHA256(seed, step)
// mask(step) = first 8 bytes of HMAC-SHA256(code key, "mask" | step as 8 bytes big-endian), mod 10^10.

const KEYS = "wallet-device-keys";
const MODULUS = 10000000000n;

function bytes(hex) {
  return Uint8Array.from(hex.match(/../g).map((pair) => parseInt(pair, 16)));
}

function stepBytes(step) {
  const buffer = new ArrayBuffer(8);
  new DataView(buffer).setBigUint64(0, BigInt(step));
  return new Uint8Array(buffer);
}

async function hmac(key, data) {
  const imported = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", imported, data));
}

async function oneTimePassword(seed, step) {
  const digest = await hmac(seed, stepBytes(step));
  const offset = digest[digest.length - 1] & 0x0f;
  const value = (((digest[offset] & 0x7f) << 24) | (digest[offset + 1] << 16) | (digest[offset + 2] << 8)
    | digest[offset + 3]) >>> 0;
  return String(value % 1000000).padStart(6, "0");
}

async function mask(codeKey, step) {
  const message = new Uint8Array([...new TextEncoder().encode("mask"), ...stepBytes(step)]);
  const digest = await hmac(codeKey, message);
  return new DataView(digest.buffer).getBigUint64(0) % MODULUS;
}

async function makeCode(keys, step) {
  const masked = (BigInt(keys.number) + (await mask(bytes(keys.code_key), step))) % MODULUS;
  return "28" + masked.toString().padStart(10, "0") + (await oneTimePassword(bytes(keys.seed), step));
}

async function deviceKeys(owner) {
  const kept = JSON.parse(localStorage.getItem(KEYS) || "null");
  if (kept && kept.owner === owner) return kept;
  const answer = await fetch("/w/device", { method: "POST", credentials: "same-origin" });
  if (!answer.ok) throw new Error("the wallet could not give this phone its keys");
  const keys = { ...(await answer.json()), owner };
  localStorage.setItem(KEYS, JSON.stringify(keys));
  return keys;
}

function draw(code, seconds) {
  const qr = qrcode(0, "M");
  qr.addData(code, "Numeric");
  qr.make();
  document.getElementById("code-qr").innerHTML = qr.createSvgTag({ cellSize: 6, margin: 4, scalable: true });
  JsBarcode("#code-barcode", code, { format: "CODE128", displayValue: false, height: 70, margin: 0 });
  document.getElementById("code-digits").textContent = code.replace(/(\d{4})(?=\d)/g, "$1 ");
  document.getElementById("code-digits").dataset.code = code;
  document.getElementById("code-left").textContent = `changes in ${seconds} s`;
}

async function showCodes(section) {
  const status = document.getElementById("code-status");
  let keys;
  try {
    keys = await deviceKeys(section.dataset.owner);
  } catch (error) {
    status.textContent = "Open this page once with a connection to show your payment code.";
    return;
  }
  section.hidden = false;
  status.textContent = "";
  let shown = -1;
  const tick = async () => {
    const now = Date.now() / 1000;
    const step = Math.floor(now / keys.step_seconds);
    const left = Math.ceil((step + 1) * keys.step_seconds - now);
    if (step !== shown) {
      shown = step;
      draw(await makeCode(keys, step), left);
    } else {
      document.getElementById("code-left").textContent = `changes in ${left} s`;
    }
  };
  await tick();
  setInterval(tick, 1000);
}

function showConnection() {
  const banner = document.getElementById("offline");
  if (banner) banner.hidden = navigator.onLine;
}

window.addEventListener("online", showConnection);
window.addEventListener("offline", showConnection);
document.addEventListener("DOMContentLoaded", () => {
  showConnection();
  const section = document.getElementById("code");
  if (section) showCodes(section);
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/w/sw.js", { scope: "/w/" });
});
