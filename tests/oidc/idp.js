// A real, certified OpenID provider (npm `oidc-provider`) on loopback, for datakube's
// end-to-end tests (tests/tests/oidc.rs). Plain HTTP on 127.0.0.1 only.
//
// Environment:
//   PORT           port to listen on (0: any free port; the chosen one is printed)
//   KEYS_FILE      JSON file with the provider's private signing keys (a JWK list); created
//                  with one new RSA key when missing
//   ROTATE=1       generate a new signing key and put it first (the old one stays published)
//   REDIRECT_URI   the redirect URI of the `datakube` client (https://localhost:<port>/callback)
//   CLIENT_SECRET  the secret of every confidential client
//   AUDIENCE       the resource indicator (audience) of datakube's JWT access tokens
//
// Clients:
//   datakube        authorization code + PKCE, the browser login
//   bi-impersonator client_credentials (a BI vendor's server allowed to impersonate)
//   bi-plain        client_credentials (not allowed to impersonate)
//   bi-short        client_credentials, access tokens live 1 second (expiry tests)
//
// Accounts (devInteractions: any password): anna (Aarhus, CVR 55133018), lars (Læsø,
// CVR 45973328), ida (administrator, role datakube_admin), with the custom claims
// `organisation_cvr` and `roles`.
//
// Test-only endpoint POST /test/sign {claims, key: "provider"|"foreign"|"foreign-same-kid"}:
// signs arbitrary claims with the provider's own current key (to test issuer, nbf, ... checks
// with a correctly signed token) or with a key that is not published.
//
// Prints "listening <issuer>" once ready and one "request <METHOD> <path>" line per request.

import * as fs from 'node:fs';
import * as crypto from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.env.PORT || 0);
const keysFile = process.env.KEYS_FILE;
const redirectUri = process.env.REDIRECT_URI || 'https://localhost:8443/callback';
const clientSecret = process.env.CLIENT_SECRET || 'test-client-secret-0123456789abcdef';
const audience = process.env.AUDIENCE || 'urn:datakube';

async function newKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  jwk.kid = crypto.randomBytes(8).toString('hex');
  jwk.alg = 'RS256';
  jwk.use = 'sig';
  return jwk;
}

let keys = [];
if (keysFile && fs.existsSync(keysFile)) {
  keys = JSON.parse(fs.readFileSync(keysFile, 'utf8'));
}
if (keys.length === 0 || process.env.ROTATE === '1') {
  keys.unshift(await newKey());
}
if (keysFile) fs.writeFileSync(keysFile, JSON.stringify(keys));

const accounts = {
  anna: { name: 'Anna Analytiker', organisation_cvr: '55133018', roles: ['analytiker'] },
  lars: { name: 'Lars Læsø', organisation_cvr: '45973328', roles: ['analytiker'] },
  // The administrator of the portal's browser test (tests/portal).
  ida: { name: 'Ida Administrator', organisation_cvr: '55133018', roles: ['datakube_admin'] },
};

// The issuer must be known before listening: bind first, then build the provider.
import * as http from 'node:http';
const server = http.createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const resourceInfo = (resource, client) => ({
  scope: 'xmla',
  audience: resource,
  accessTokenFormat: 'jwt',
  accessTokenTTL: client?.clientId === 'bi-short' ? 1 : 600,
  jwt: { sign: { alg: 'RS256' } },
});

const cc = (clientId) => ({
  client_id: clientId,
  client_secret: clientSecret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
});

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'datakube',
      client_secret: clientSecret,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    cc('bi-impersonator'),
    cc('bi-plain'),
    cc('bi-short'),
  ],
  jwks: { keys },
  cookies: { keys: ['datakube-test-idp-cookie-key'] },
  pkce: { required: () => true },
  claims: { openid: ['sub', 'name', 'organisation_cvr', 'roles'] },
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    const a = accounts[id];
    if (!a) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...a }; } };
  },
  async extraTokenClaims(ctx, token) {
    const a = token.accountId && accounts[token.accountId];
    return a ? { organisation_cvr: a.organisation_cvr, roles: a.roles, name: a.name } : undefined;
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => audience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource, client) => {
        if (resource === audience || resource === 'urn:other-api') return resourceInfo(resource, client);
        throw new Provider.errors.InvalidTarget();
      },
    },
  },
  // Access token lifetimes come from the resource server (accessTokenTTL above).
  ttl: { IdToken: 600 },
});

provider.use(async (ctx, next) => {
  console.log(`request ${ctx.method} ${ctx.path}`);
  if (ctx.method === 'POST' && ctx.path === '/test/sign') {
    const body = await new Promise((resolve) => {
      let s = '';
      ctx.req.on('data', (c) => { s += c; });
      ctx.req.on('end', () => resolve(s));
    });
    const { claims, key: which = 'provider' } = JSON.parse(body);
    let key = keys[0];
    if (which !== 'provider') {
      key = await newKey();
      if (which === 'foreign-same-kid') key.kid = keys[0].kid;
    }
    const jwt = await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
      .sign(await jose.importJWK(key, 'RS256'));
    ctx.type = 'text/plain';
    ctx.body = jwt;
    return;
  }
  await next();
});

server.on('request', provider.callback());
console.log(`listening ${issuer}`);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
