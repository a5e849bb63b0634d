// The browser globals the `datafast` web SDK reads, for one page load in Node: window,
// document (with a cookie jar and a referrer), navigator, location, history, screen,
// localStorage / sessionStorage, and a fetch that sends the User-Agent and Origin headers a
// browser would add.

class MemoryStorage {
  #items = new Map();
  getItem(k) { return this.#items.has(k) ? this.#items.get(k) : null; }
  setItem(k, v) { this.#items.set(k, String(v)); }
  removeItem(k) { this.#items.delete(k); }
  clear() { this.#items.clear(); }
  get length() { return this.#items.size; }
}

class CookieJar {
  #cookies = new Map();
  get cookie() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  set cookie(text) {
    const [pair, ...attrs] = text.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expires = attrs.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('expires='));
    if (expires && Date.parse(expires.slice(8)) < Date.now()) this.#cookies.delete(name);
    else this.#cookies.set(name, value);
  }
}

/// Installs the globals for a browser with `userAgent` showing `href`, arrived from `referrer`.
export function installBrowser({ userAgent, href, referrer = '', width = 1440, height = 900 }) {
  const jar = new CookieJar();
  const listeners = new Map();
  const location = new URL(href);
  const win = globalThis;
  win.window = win;
  win.parent = win;
  win.self = win;
  win.innerWidth = width;
  win.innerHeight = height;
  win.screen = { width, height };
  win.location = location;
  win.addEventListener = (type, fn) => listeners.set(type, fn);
  win.removeEventListener = (type) => listeners.delete(type);
  win.history = {
    pushState(_s, _t, url) { win.location.href = new URL(url, win.location.href).href; },
    replaceState(_s, _t, url) { win.location.href = new URL(url, win.location.href).href; },
  };
  Object.defineProperty(win, 'navigator', {
    value: { userAgent, language: 'en-US', webdriver: false },
    configurable: true,
  });
  win.document = {
    referrer,
    documentElement: { getAttribute: () => null },
    get cookie() { return jar.cookie; },
    set cookie(text) { jar.cookie = text; },
  };
  win.localStorage = new MemoryStorage();
  win.sessionStorage = new MemoryStorage();
  const nodeFetch = globalThis.fetch;
  win.fetch = (url, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('user-agent', userAgent);
    headers.set('origin', location.origin);
    return nodeFetch(url, { ...init, headers });
  };
}

/// Moves the page to `href` (a client-side navigation).
export function navigate(href) {
  globalThis.location.href = new URL(href, globalThis.location.href).href;
}
