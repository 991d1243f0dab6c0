// npm's oidc-provider (panva, OpenID Certified) set up as identity is, so that
// benchmarks/peer.py can measure the two side by side:
//
//   node server.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
//
// One confidential client (client_secret_basic), one ES256 signing key made at start, PKCE
// required, refresh tokens issued with every code and rotated at every use, introspection and
// revocation on, the default in-memory store. Access tokens are the default opaque ones (the
// store is the only place they live); identity's are JWTs. The member's sign-in has no page:
// /interaction/UID signs in the one member and grants what the app asked for, then sends the
// browser back to authorize, which answers with the code. Prints one JSON line when listening.
import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import Provider from "oidc-provider";

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
if (!redirectUri) {
  console.error("usage: node server.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI");
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const MEMBER = {
  sub: "member-1",
  name: "Alice",
  preferred_username: "alice",
  email: "alice@acme.example",
  email_verified: true,
};

const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const signing = { ...privateKey.export({ format: "jwk" }), alg: "ES256", use: "sig", kid: "es256-1" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "ES256",
    },
  ],
  jwks: { keys: [signing] },
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username"],
    email: ["email", "email_verified"],
  },
  scopes: ["openid", "profile", "email", "offline_access"],
  cookies: { keys: ["peer-benchmark-cookie-key-0123456789"] },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { required: () => true },
  // identity gives a refresh token with every code and rotates it at every use; the same here
  // (by default oidc-provider gives one only for offline_access and rotates only late in its life).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
  rotateRefreshToken: () => true,
  interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (_ctx, sub) =>
    sub === MEMBER.sub ? { accountId: sub, claims: async () => ({ ...MEMBER }) } : undefined,
});

// The member signs in and consents without a page: a new grant of every scope asked for.
async function interaction(req, res) {
  const { params } = await provider.interactionDetails(req, res);
  const grant = new provider.Grant({ accountId: MEMBER.sub, clientId: params.client_id });
  grant.addOIDCScope(params.scope);
  const result = { login: { accountId: MEMBER.sub }, consent: { grantId: await grant.save() } };
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

const handle = provider.callback();
const server = createServer((req, res) => {
  if (req.url.startsWith("/interaction/")) {
    interaction(req, res).catch((error) => {
      res.statusCode = 500;
      res.end(String(error));
    });
    return;
  }
  handle(req, res);
});
server.listen(Number(port), "127.0.0.1", () => {
  console.log(JSON.stringify({ issuer, pid: process.pid }));
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
