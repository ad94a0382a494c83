/// The web page's files, served from the binary: plain HTML, CSS and a small script (no build
/// toolchain, nothing fetched from elsewhere). None of them holds data: the script asks the API
/// for everything once logged in. The Content-Security-Policy allows exactly these files.
enum WebAssets {
    /// The file for a request path, with its content type.
    static func file(_ path: String) -> (type: String, body: String)? {
        switch path {
        case "/", "/index.html": ("text/html; charset=utf-8", index)
        case "/app.js": ("text/javascript; charset=utf-8", script)
        case "/style.css": ("text/css; charset=utf-8", style)
        case "/favicon.svg": ("image/svg+xml", icon)
        default: nil
        }
    }

    static let index = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>TRÅDFRI bridge</title>
        <link rel="icon" href="/favicon.svg" type="image/svg+xml">
        <link rel="stylesheet" href="/style.css">
        <script src="/app.js" defer></script>
        </head>
        <body>
        <header class="top">
          <h1><img src="/favicon.svg" alt="" width="24" height="24"> TRÅDFRI bridge</h1>
          <nav id="nav" hidden>
            <a href="#home" data-view="home">Home</a>
            <a href="#pairing" data-view="pairing">Pairing <span id="pending-badge" class="count" hidden></span></a>
            <a href="#health" data-view="health">Health</a>
            <span class="who"><span id="live" class="live" title="live updates"></span><span id="user"></span></span>
            <button id="logout" type="button">Log out</button>
          </nav>
        </header>
        <main>
          <p id="problem" class="banner" hidden></p>
          <section id="setup" class="panel narrow" hidden>
            <h2>Set the administrator's password</h2>
            <p>No one can use this page until its administrator has a password. On the bridge's host, run</p>
            <pre><code id="setup-command"></code></pre>
            <p id="setup-problem" class="error"></p>
            <p>then reload this page.</p>
          </section>
          <section id="login" class="panel narrow" hidden>
            <h2>Log in</h2>
            <form id="login-form" method="post" action="/api/login">
              <label>User name <input id="login-user" name="user" autocomplete="username" required value="admin"></label>
              <label>Password <input id="login-password" name="password" type="password" autocomplete="current-password" required></label>
              <button id="login-submit" type="submit" class="primary">Log in</button>
              <p id="login-error" class="error" role="alert"></p>
            </form>
          </section>
          <section id="home" hidden></section>
          <section id="pairing" hidden></section>
          <section id="health" hidden></section>
        </main>
        <div id="toast" class="toast" role="status" hidden></div>
        </body>
        </html>

        """#

    static let icon = #"""
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="13" r="9" fill="#f5b700"/><rect x="12" y="23" width="8" height="6" rx="2" fill="#555"/></svg>

        """#
}
