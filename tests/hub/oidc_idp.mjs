// A real OpenID Connect provider (node `oidc-provider`) for the hub tests, on 127.0.0.1.
// Configured by environment: IDP_PORT, IDP_CLIENTS (JSON list of {client_id,
// client_secret, redirect_uris}), IDP_USERS (JSON {login: {password, name, groups}}).
// A password form stands in for the partner's login page; consent is granted at once
// (first-party client), as a partner's SSO would do for its own hub.
import http from 'node:http';
import crypto from 'node:crypto';
import { Provider } from 'oidc-provider';

const PORT = Number(process.env.IDP_PORT);
const ISSUER = `http://127.0.0.1:${PORT}`;
const USERS = JSON.parse(process.env.IDP_USERS);
const CLIENTS = JSON.parse(process.env.IDP_CLIENTS).map((c) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...c,
}));

const provider = new Provider(ISSUER, {
  clients: CLIENTS,
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'], groups: ['groups'] },
  scopes: ['openid', 'profile', 'email', 'groups'],
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => false },
  ttl: { AccessToken: 600, IdToken: 600, Session: 3600, Interaction: 600, Grant: 3600 },
  async findAccount(ctx, id) {
    const u = USERS[id];
    if (!u) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: u.name || id, email: `${id}@example.org`, groups: u.groups || [] };
      },
    };
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (uid, msg = '') => `<!doctype html><html><head><title>Partner sign-in</title></head><body>
<h1>Partner sign-in</h1>${msg ? `<p id="err">${esc(msg)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label>User <input id="login" name="login" autofocus></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="submit" type="submit">Sign in</button></form></body></html>`;

const readBody = (req) => new Promise((resolve) => {
  let d = '';
  req.on('data', (c) => { d += c; });
  req.on('end', () => resolve(new URLSearchParams(d)));
});

const oidc = provider.callback();
http.createServer(async (req, res) => {
  const m = new URL(req.url, ISSUER).pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!m) return oidc(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    const { uid, prompt, params, session } = details;
    if (prompt.name === 'consent') {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      return res.end(page(uid));
    }
    if (req.method === 'POST' && m[2]) {
      const body = await readBody(req);
      const u = USERS[body.get('login')];
      if (!u || u.password !== body.get('password')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(page(uid, 'Invalid credentials'));
      }
      return provider.interactionFinished(req, res, { login: { accountId: body.get('login') } }, { mergeWithLastSubmission: false });
    }
    res.writeHead(405); return res.end();
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    return res.end(`interaction error: ${err.message}`);
  }
}).listen(PORT, '127.0.0.1', () => console.log(`IdP listening on ${ISSUER}`));
