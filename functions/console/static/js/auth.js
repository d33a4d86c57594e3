// Sign-in. In AWS: the identity provider's OpenID Connect authorization-code flow with PKCE (config.json
// names its endpoints and the client). On the local stack: a development sign-in that asks
// POST /_local/token for a token (that route exists only there). The session lives in sessionStorage.

const SESSION = 'console.session';
const PENDING = 'console.pkce';
export const ROLES = ['admin', 'service', 'user'];

export async function loadConfig() {
  const response = await fetch('config.json', { cache: 'no-store' });
  return response.ok ? response.json() : { oidc: null };
}

/** Whether the development sign-in is served (the local stack only). */
export async function devSignInAvailable() {
  const response = await fetch('/_local/token').catch(() => null);
  return Boolean(response?.ok);
}

function claimsOf(token) {
  const part = token.split('.')[1] || '';
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
}

function rolesOf(claims) {
  const roles = claims.roles ?? claims['custom:roles'] ?? [];
  return Array.isArray(roles) ? roles : String(roles).replace(/[[\],]/g, ' ').split(/\s+/).filter(Boolean);
}

/** Who is signed in (display only: the API checks the token itself), or null. */
export function currentSession() {
  const stored = sessionStorage.getItem(SESSION);
  if (!stored) return null;
  const { token } = JSON.parse(stored);
  const claims = claimsOf(token);
  if (claims.exp && claims.exp * 1000 <= Date.now()) {
    signOut();
    return null;
  }
  const roles = rolesOf(claims);
  return {
    token, claims, roles, sub: claims.sub,
    tenant: claims.tenant_id ?? claims['custom:tenant_id'], app: claims.app_id ?? claims['custom:app_id'],
    role: ROLES.find((r) => roles.includes(r)) || 'none',
  };
}

function keep(token) {
  sessionStorage.setItem(SESSION, JSON.stringify({ token }));
}

export function signOut() {
  sessionStorage.removeItem(SESSION);
}

/** The local stack's development sign-in: errors come back in the API's shape, by field. */
export async function devSignIn(fields) {
  const response = await fetch('/_local/token', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(fields),
  });
  const answer = await response.json();
  if (!response.ok) return answer;
  keep(answer.token);
  return null;
}

const base64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const randomString = () => base64url(crypto.getRandomValues(new Uint8Array(32)));
const redirectUri = () => `${location.origin}/console/`;

/** Leaves for the identity provider's sign-in page (authorization code + PKCE S256). */
export async function startOidc(oidc) {
  const verifier = randomString();
  const state = randomString();
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const url = new URL(oidc.authorize_url);
  url.search = new URLSearchParams({
    response_type: 'code', client_id: oidc.client_id, redirect_uri: redirectUri(), scope: oidc.scopes,
    state, code_challenge: challenge, code_challenge_method: 'S256',
  });
  location.assign(url);
}

/** On the way back from the provider: trades the code for tokens. Answers an error message, or null. */
export async function completeOidc(oidc) {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return null;
  history.replaceState(null, '', location.pathname + location.hash);  // the code is single-use: drop it
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  if (params.has('error')) return `Sign-in refused: ${params.get('error_description') || params.get('error')}`;
  if (!pending || pending.state !== params.get('state')) return 'Sign-in failed: the answer does not match the request.';
  const response = await fetch(oidc.token_url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: params.get('code'), client_id: oidc.client_id,
      redirect_uri: redirectUri(), code_verifier: pending.verifier,
    }),
  }).catch(() => null);
  const tokens = response?.ok ? await response.json() : null;
  if (!tokens?.[oidc.bearer]) return 'Sign-in failed: the identity provider gave no token.';
  keep(tokens[oidc.bearer]);
  return null;
}
