// An ISV app's back end written with npm's openid-client, a relying party this project did not
// write, so that identity is checked against someone else's reading of the specifications.
// Driven by tests/test_provider_rp.py, one command per run:
//
//   node rp.mjs STATE_FILE COMMAND [ARG]
//
// STATE_FILE is JSON the test writes first ({issuer, client_id, client_secret, redirect_uri,
// post_logout_redirect_uri}); commands keep the app's memory there (PKCE verifier, state, nonce,
// tokens), as an app keeps it in its session. Each run prints one JSON object on stdout and exits
// 0, or prints {"error": {...}} and exits 1 when openid-client refused something.
//
// Every endpoint comes from discovery. openid-client validates what it receives: the
// authorization response (state, iss), the ID token (signature against jwks_uri, iss, aud, azp,
// exp, iat, nonce), userinfo's sub. The access token is checked as a resource server would
// (RFC 9068) with oauth4webapi, openid-client's own foundation.
import { readFileSync, writeFileSync } from "node:fs";
import * as client from "openid-client";
import * as oauth from "oauth4webapi";

const SCOPE = "openid profile email";

function load(file) {
  return JSON.parse(readFileSync(file, "utf8"));
}

function save(file, state) {
  writeFileSync(file, JSON.stringify(state, null, 2));
}

// How the app authenticates at the token, introspection and revocation endpoints.
const AUTHENTICATION = {
  client_secret_basic: (secret) => client.ClientSecretBasic(secret),
  client_secret_post: (secret) => client.ClientSecretPost(secret),
  none: () => client.None(),
};

// The test stack serves plain http on 127.0.0.1; openid-client refuses http unless told.
async function configure(state) {
  const method = state.auth_method ?? "client_secret_basic";
  const metadata = { token_endpoint_auth_method: method };
  if (state.client_secret) metadata.client_secret = state.client_secret;
  if (state.clock_tolerance !== undefined) metadata[client.clockTolerance] = state.clock_tolerance;
  return client.discovery(
    new URL(state.issuer),
    state.client_id,
    metadata,
    AUTHENTICATION[method](state.client_secret),
    { execute: [client.allowInsecureRequests] },
  );
}

function tokenOutput(tokens) {
  const { access_token, refresh_token, id_token, token_type, expires_in, scope } = tokens;
  return {
    tokens: { access_token, refresh_token, id_token, token_type, expires_in, scope },
    claims: tokens.claims() ?? null,
  };
}

const commands = {
  // Discovery, then the authorization URL with PKCE S256, state and nonce. ARG: JSON of more
  // authorization parameters (login_hint, prompt, …).
  async start(config, state, extra) {
    const verifier = client.randomPKCECodeVerifier();
    state.pending = {
      code_verifier: verifier,
      state: client.randomState(),
      nonce: client.randomNonce(),
    };
    const parameters = {
      redirect_uri: state.redirect_uri,
      scope: SCOPE,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state: state.pending.state,
      nonce: state.pending.nonce,
    };
    Object.assign(parameters, JSON.parse(extra ?? "{}"));
    if (parameters.max_age !== undefined) state.pending.max_age = Number(parameters.max_age);
    const url = client.buildAuthorizationUrl(config, parameters);
    return { url: url.href, metadata: config.serverMetadata() };
  },

  // The URL the browser landed on at the redirect URI: code for tokens, all of it validated.
  async callback(config, state, landedOn) {
    const tokens = await client.authorizationCodeGrant(config, new URL(landedOn), {
      pkceCodeVerifier: state.pending.code_verifier,
      expectedState: state.pending.state,
      expectedNonce: state.pending.nonce,
      idTokenExpected: true,
      maxAge: state.pending.max_age,
    });
    const output = tokenOutput(tokens);
    state.tokens = output.tokens;
    state.claims = output.claims;
    return output;
  },

  async refresh(config, state) {
    const tokens = await client.refreshTokenGrant(config, state.tokens.refresh_token);
    const output = tokenOutput(tokens);
    state.previous = state.tokens;
    state.tokens = output.tokens;
    return output;
  },

  // Userinfo, whose sub openid-client requires to equal the ID token's.
  async userinfo(config, state) {
    return client.fetchUserInfo(config, state.tokens.access_token, state.claims.sub);
  },

  // ARG: which token, "access_token" (default), "refresh_token", or "previous_access_token".
  async introspect(config, state, which) {
    return client.tokenIntrospection(config, pick(state, which));
  },

  async revoke(config, state, which) {
    await client.tokenRevocation(config, pick(state, which));
    return { revoked: which ?? "access_token" };
  },

  // The access token as a resource server validates it (RFC 9068: typ at+jwt, signature, iss,
  // exp, aud, and the presence of sub, client_id, iat, jti), with the client id as audience.
  async resource(config, state) {
    const request = new Request("http://127.0.0.1/resource", {
      headers: { authorization: `Bearer ${state.tokens.access_token}` },
    });
    return oauth.validateJwtAccessToken(config.serverMetadata(), request, state.client_id, {
      [oauth.allowInsecureRequests]: true,
    });
  },

  // RP-Initiated Logout 1.0: the end_session_endpoint URL the browser is sent to.
  async "logout-url"(config, state) {
    state.logout_state = client.randomState();
    const url = client.buildEndSessionUrl(config, {
      id_token_hint: state.tokens.id_token,
      post_logout_redirect_uri: state.post_logout_redirect_uri,
      state: state.logout_state,
    });
    return { url: url.href, state: state.logout_state };
  },
};

function pick(state, which = "access_token") {
  if (which.startsWith("previous_")) return state.previous[which.slice("previous_".length)];
  return state.tokens[which];
}

function describe(error) {
  const out = { name: error.name, message: error.message };
  for (const key of ["code", "error", "error_description", "status"]) {
    if (error[key] !== undefined) out[key] = error[key];
  }
  if (error.cause !== undefined) {
    out.cause = error.cause instanceof Error ? describe(error.cause) : error.cause;
  }
  return out;
}

async function main() {
  const [file, name, arg] = process.argv.slice(2);
  const command = commands[name];
  if (!file || !command) {
    console.error(`usage: rp.mjs STATE_FILE (${Object.keys(commands).join("|")}) [ARG]`);
    process.exit(2);
  }
  const state = load(file);
  try {
    const config = await configure(state);
    const result = await command(config, state, arg);
    save(file, state);
    process.stdout.write(JSON.stringify(result) + "\n");
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    process.stdout.write(JSON.stringify({ error: describe(error) }) + "\n");
    process.exit(1);
  }
}

await main();
