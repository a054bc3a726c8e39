// A real OpenID provider (the npm package oidc-provider) for
// tests/e2e_oidc.rs: serves HTTPS on 127.0.0.1 with a certificate from the
// test's CA, one confidential client (the console), and accounts named in
// the config file (argv[2], JSON: port, cert, key, client_id,
// client_secret, redirect_uri, accounts). Prints "ready ISSUER" once it
// listens.
//
// The interaction (login and consent) is a tiny form of its own instead of
// devInteractions: the test types the account and the `amr` values the
// provider puts in the ID token (how it "checked" the user).
//
// Misbehaviour on request, for the refusal tests, set by a visit to
// /_test/next?mode=MODE for the next sign-in: `wrong_audience`, the token
// response carries an ID token re-signed with the provider's own key for
// another audience; `hold`, the redirect back to the console is not
// followed but shown as a link (#callback), for the test to alter.
import { readFileSync } from "node:fs";
import https from "node:https";
import Provider from "oidc-provider";
import { generateKeyPair, exportJWK, SignJWT, decodeJwt } from "jose";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const issuer = `https://127.0.0.1:${cfg.port}`;
const accounts = new Set(cfg.accounts);

const { privateKey } = await generateKeyPair("RS256", { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: "test-rs256", alg: "RS256", use: "sig" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: cfg.client_id,
      client_secret: cfg.client_secret,
      redirect_uris: [cfg.redirect_uri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [jwk] },
  async findAccount(_ctx, id) {
    if (!accounts.has(id)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id };
      },
    };
  },
  // amr under openid: an ID token carries only the claims of its scopes.
  claims: {
    openid: ["sub", "amr", "acr", "auth_time"],
    profile: ["preferred_username"],
    sid: null,
  },
  // The scope's claims in the ID token itself (code flow), as most
  // providers do for preferred_username.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  cookies: { keys: ["gatehouse-test-cookie-key"] },
});

let nextMode = null;
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([A-Za-z0-9_-]+)(\/finish)?$/);
  if (m && ctx.method === "GET" && !m[2]) {
    const uid = esc(m[1]);
    ctx.type = "html";
    ctx.body = `<!doctype html><title>Test provider</title>
      <form method="get" action="/interaction/${uid}/finish">
        <input name="login" id="login"> <input name="amr" id="amr" value="pwd">
        <button id="go" type="submit">Sign in</button>
      </form>`;
    return;
  }
  if (m && ctx.method === "GET" && m[2]) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const accountId = String(ctx.query.login || "");
    const amr = String(ctx.query.amr || "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    const login = { accountId };
    if (amr.length) login.amr = amr;
    const to = await provider.interactionResult(
      ctx.req,
      ctx.res,
      { login, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
    ctx.status = 303;
    ctx.redirect(to);
    return;
  }
  if (ctx.path === "/_test/next") {
    nextMode = String(ctx.query.mode || "") || null;
    ctx.type = "text";
    ctx.body = `next: ${nextMode}`;
    return;
  }
  await next();
  const location = ctx.response.get("location");
  if (nextMode === "hold" && location && location.startsWith(cfg.redirect_uri)) {
    nextMode = null;
    ctx.status = 200;
    ctx.remove("location");
    ctx.type = "html";
    ctx.body = `<!doctype html><title>held</title><a id="callback" href="${esc(location)}">back</a>`;
    return;
  }
  if (ctx.path === "/token" && nextMode === "wrong_audience" && ctx.body && ctx.body.id_token) {
    nextMode = null;
    const claims = decodeJwt(ctx.body.id_token);
    claims.aud = "another-client";
    claims.azp = "another-client";
    const idToken = await new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", kid: jwk.kid })
      .sign(privateKey);
    ctx.body = { ...ctx.body, id_token: idToken };
  }
});

const server = https.createServer(
  { cert: readFileSync(cfg.cert), key: readFileSync(cfg.key) },
  provider.callback(),
);
server.listen(cfg.port, "127.0.0.1", () => console.log(`ready ${issuer}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
