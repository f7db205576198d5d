// A real OpenID Connect provider (the certified `oidc-provider` package, v8: the line
// that supports Node.js 18/20) on loopback, used by the end-to-end tests of
// "sign in with an external provider".
//
//   node provider.mjs <port> <client_id> <client_secret> <redirect_uri>
//
// Its development interactions accept any login name (and any password); the
// account's subject is the login name and its email `<login>@idp.example` (verified).
// Authorization codes are single-use and PKCE (S256) is required, as a production
// provider would have it. State lives in memory: each run starts empty.
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
if (!port || !clientId || !clientSecret || !redirectUri) {
  console.error('usage: node provider.mjs <port> <client_id> <client_secret> <redirect_uri>');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@idp.example`, email_verified: true, name: `IdP ${id}` };
      },
    };
  },
  // Signed interaction and session cookies, so a tampered cookie is ignored.
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: { devInteractions: { enabled: true } },
  pkce: { methods: ['S256'], required: () => true },
});

const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
