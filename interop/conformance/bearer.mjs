// Preload (node --import ./bearer.mjs) that gives every HTTP request to MCP_BEARER_ORIGIN an
// `Authorization: Bearer $MCP_BEARER_TOKEN` header. The conformance suite has no token option,
// and its scenarios reach the server three ways: global fetch, the undici package (requests
// with a forged Host header), and node:http. A request that already carries an Authorization
// header keeps it, and requests to any other origin are left alone.
import http from 'node:http';
import https from 'node:https';
import { getGlobalDispatcher, setGlobalDispatcher } from 'undici';

const token = process.env.MCP_BEARER_TOKEN;
const origin = process.env.MCP_BEARER_ORIGIN;
if (!token || !origin) {
  throw new Error('bearer.mjs needs MCP_BEARER_TOKEN and MCP_BEARER_ORIGIN');
}
const target = new URL(origin);
const value = `Bearer ${token}`;

function targets(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === target.protocol && parsed.host === target.host;
  } catch {
    return false;
  }
}

function hasAuthorization(headers) {
  if (!headers) return false;
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += Array.isArray(headers[i]) ? 1 : 2) {
      const name = Array.isArray(headers[i]) ? headers[i][0] : headers[i];
      if (String(name).toLowerCase() === 'authorization') return true;
    }
    return false;
  }
  if (typeof headers.has === 'function') return headers.has('authorization');
  return Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
}

function withAuthorization(headers) {
  if (hasAuthorization(headers)) return headers;
  if (!headers) return { authorization: value };
  if (Array.isArray(headers)) {
    return Array.isArray(headers[0])
      ? [...headers, ['authorization', value]]
      : [...headers, 'authorization', value];
  }
  if (typeof headers.set === 'function') {
    const copy = new Headers(headers);
    copy.set('authorization', value);
    return copy;
  }
  return { ...headers, authorization: value };
}

// fetch (Node's built-in undici): add the header to the Request itself.
const originalFetch = globalThis.fetch;
globalThis.fetch = function fetchWithBearer(input, init) {
  const url = input instanceof Request ? input.url : String(input);
  if (!targets(url)) return originalFetch(input, init);
  if (input instanceof Request && !init) {
    if (input.headers.has('authorization')) return originalFetch(input);
    const headers = new Headers(input.headers);
    headers.set('authorization', value);
    return originalFetch(new Request(input, { headers }));
  }
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : {}));
  if (!headers.has('authorization')) headers.set('authorization', value);
  return originalFetch(input, { ...init, headers });
};

// undici's dispatcher (the package's request/fetch; shared with the built-in fetch).
setGlobalDispatcher(
  getGlobalDispatcher().compose((dispatch) => (options, handler) => {
    if (targets(new URL(options.path, options.origin).href)) {
      options = { ...options, headers: withAuthorization(options.headers) };
    }
    return dispatch(options, handler);
  }),
);

// node:http and node:https.
for (const module of [http, https]) {
  for (const name of ['request', 'get']) {
    const original = module[name];
    module[name] = function requestWithBearer(...args) {
      let url;
      let options;
      if (typeof args[0] === 'string' || args[0] instanceof URL) {
        url = new URL(args[0]);
        options = typeof args[1] === 'object' && args[1] !== null ? args[1] : undefined;
        if (!options) {
          options = {};
          args.splice(1, 0, options);
        }
      } else {
        options = args[0] ?? {};
        args[0] = options;
        const protocol = options.protocol ?? (module === https ? 'https:' : 'http:');
        const host = options.hostname ?? options.host ?? 'localhost';
        const port = options.port ? `:${options.port}` : '';
        url = new URL(`${protocol}//${host}${port}${options.path ?? '/'}`);
      }
      if (targets(url.href)) {
        options.headers = withAuthorization(options.headers);
      }
      return original.apply(this, args);
    };
  }
}
