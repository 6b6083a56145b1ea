import Hummingbird

enum SignInView {
    static func render(formToken: String, configured: Bool, passwordEnabled: Bool, notice: String?, error: String?, status: HTTPResponse.Status) -> Response {
        let what = passwordEnabled ? "an API token (api.tokens) or the dashboard password" : "an API token from api.tokens in doorbell.yml"
        let content: HTML = configured ? """
        <section class="card signin"><h1>Sign in</h1>
        <form class="stack" method="post" action="/ui/sign-in">
        <input type="hidden" name="_csrf" value="\(formToken)">
        <label>Token or password<input type="password" name="secret" id="secret" autocomplete="current-password" required autofocus></label>
        <button type="submit" id="sign-in">Sign in</button>
        <p class="muted">Use \(what).</p>
        </form></section>
        """ : """
        <section class="card signin"><h1>Sign in</h1><p>Nobody can sign in yet: add a token to <code>api.tokens</code>, or a
        <code>dashboard.password_hash</code> from <code>doorbell hash-password</code>, to doorbell.yml and restart.</p></section>
        """
        return Layout.page("Sign in", tab: nil, signedIn: nil, status: status, notice: notice, error: error, content)
    }
}
