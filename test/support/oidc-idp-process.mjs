/* global process, console, URLSearchParams */
// A real OpenID provider (oidc-provider) on loopback, run as its own process by test/support/oidc-idp.ts.
// argv[2]: a JSON file of settings, read once: { clientId, clientSecret, redirectUri, postLogoutRedirectUri, usersFile }.
// The users file is read at every sign-in, so a test changes a person's groups (or password) by rewriting it:
//   { "<login>": { "sub": "...", "password": "...", "groups": ["..."], "roles": ["..."], "email": "..." } }
// The login form is answered by the test (Chromium fills it, or the HTTP client posts it): user name,
// password, and a box "I used a second factor" that makes the ID token's amr ["pwd", "mfa"] instead of ["pwd"].
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = () => JSON.parse(readFileSync(settings.usersFile, 'utf8'));
const bySub = (sub) => Object.entries(users()).find(([, u]) => u.sub === sub);

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head><body><h1>${escape(title)}</h1>${body}</body></html>`;

function readForm(req) {
  return new Promise((resolve, reject) => {
    let text = '';
    req.on('data', (d) => { text += d; });
    req.on('end', () => resolve(new URLSearchParams(text)));
    req.on('error', reject);
  });
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: settings.clientId,
      client_secret: settings.clientSecret,
      redirect_uris: [settings.redirectUri],
      post_logout_redirect_uris: [settings.postLogoutRedirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    // PKCE is the gateway's to send: the provider checks it when a challenge came, as most IdPs do.
    pkce: { required: () => false },
    cookies: { keys: ['test-idp-cookie-key-0123456789abcdef'] },
    // Like most IdPs, every ID token says how the person signed in (amr), whatever the scopes.
    claims: { acr: null, sid: null, auth_time: null, iss: null, openid: ['sub', 'amr', 'acr', 'auth_time'], profile: ['preferred_username', 'name'], email: ['email'], groups: ['groups'], roles: ['roles'] },
    scopes: ['openid', 'profile', 'email', 'groups', 'roles'],
    // Claims asked for by scope go into the ID token, which is where the gateway reads them.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page('Sign out of the test IdP', `${form}<button form="op.logoutForm" type="submit" name="logout" value="yes">Sign out of the IdP</button>`);
        },
      },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // A first-party client: no consent screen, the requested scopes are granted.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid profile email groups roles');
      await grant.save();
      return grant;
    },
    findAccount: async (_ctx, sub) => {
      const found = bySub(sub);
      if (!found) return undefined;
      const [login, u] = found;
      return {
        accountId: sub,
        claims: async () => ({ sub, preferred_username: u.preferred_username ?? login, name: login, email: u.email, groups: u.groups ?? [], roles: u.roles ?? [] }),
      };
    },
    ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, AuthorizationCode: 60, IdToken: 600 },
  });

  server.on('request', async (req, res) => {
    const match = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(req.url.split('?')[0]);
    if (!match) return provider.callback()(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'GET') {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(page('Hospital IdP sign-in', `<form method="post" action="/interaction/${escape(details.uid)}/login">
          <label>IdP user <input name="login" autocomplete="off"></label>
          <label>IdP password <input name="password" type="password"></label>
          <label><input name="mfa" type="checkbox" value="yes"> I used a second factor</label>
          <button type="submit">Sign in at the IdP</button></form>`));
        return undefined;
      }
      const form = await readForm(req);
      const u = users()[form.get('login') ?? ''];
      if (!u || u.password !== form.get('password')) {
        res.statusCode = 401;
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(page('Wrong IdP password', '<p>Wrong user or password.</p>'));
        return undefined;
      }
      const amr = form.get('mfa') === 'yes' ? ['pwd', 'mfa'] : ['pwd'];
      await provider.interactionFinished(req, res, { login: { accountId: u.sub, amr } }, { mergeWithLastSubmission: false });
    } catch (err) {
      res.statusCode = 500;
      res.end(String(err?.message ?? err));
    }
    return undefined;
  });
  console.log(JSON.stringify({ issuer }));
});
