extension WebAssets {
    /// The page's style: readable on a phone (one column) and a desktop (a grid of cards), light
    /// or dark as the system prefers.
    static let style = #"""
        :root {
          --bg: #f4f5f7; --fg: #1d232b; --muted: #667085; --card: #fff; --line: #dde1e7;
          --accent: #0a5fb4; --on: #f5b700; --ok: #1a7f37; --bad: #b42318; --warn: #b54708;
          color-scheme: light dark;
        }
        @media (prefers-color-scheme: dark) {
          :root { --bg: #15181d; --fg: #e8eaed; --muted: #98a2b3; --card: #1f242b; --line: #343b45; --accent: #5aa7ff; }
        }
        * { box-sizing: border-box; }
        body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg); }
        .top { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem; padding: .6rem 1rem; background: var(--card); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 2; }
        .top h1 { font-size: 1.15rem; margin: 0; display: flex; align-items: center; gap: .4rem; }
        nav { display: flex; flex-wrap: wrap; align-items: center; gap: .25rem .9rem; flex: 1; }
        nav a { color: var(--fg); text-decoration: none; padding: .3rem .1rem; border-bottom: 2px solid transparent; }
        nav a.current { border-color: var(--accent); font-weight: 600; }
        nav .who { margin-left: auto; color: var(--muted); display: flex; align-items: center; gap: .4rem; }
        .live { width: .6rem; height: .6rem; border-radius: 50%; background: var(--line); display: inline-block; }
        .live.on { background: var(--ok); }
        .count { background: var(--bad); color: #fff; border-radius: 1rem; padding: 0 .45rem; font-size: .8rem; }
        main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
        h2 { font-size: 1.2rem; margin: 0 0 .5rem; display: flex; align-items: center; gap: .5rem; flex-wrap: wrap; }
        h3 { font-size: 1rem; color: var(--muted); margin: 1rem 0 .4rem; font-weight: 600; }
        h4 { font-size: 1rem; margin: 0; }
        .panel { background: var(--card); border: 1px solid var(--line); border-radius: .6rem; padding: 1rem; margin-bottom: 1rem; }
        .narrow { max-width: 28rem; margin: 2rem auto; }
        .banner { background: var(--bad); color: #fff; padding: .6rem 1rem; border-radius: .4rem; }
        .gateway { margin-bottom: 1.5rem; }
        .gateway-head { display: flex; flex-wrap: wrap; align-items: center; gap: .3rem .8rem; }
        .gateway-head h2 { margin: 0; }
        .gateway-head .meta { flex-basis: 100%; margin: 0; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: .7rem; }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: .6rem; padding: .7rem .8rem; display: flex; flex-direction: column; gap: .35rem; }
        .card.offline { opacity: .6; }
        .card header { display: flex; justify-content: space-between; gap: .5rem; align-items: baseline; }
        .card[data-state="ON"] { border-color: var(--on); box-shadow: inset 4px 0 0 var(--on); }
        .summary { margin: 0; font-weight: 500; }
        .meta { margin: 0; color: var(--muted); font-size: .85rem; overflow-wrap: anywhere; }
        .muted { color: var(--muted); }
        .controls { display: flex; flex-direction: column; gap: .4rem; }
        .control { display: grid; grid-template-columns: 1fr auto; gap: 0 .5rem; font-size: .85rem; color: var(--muted); }
        .control input, .control select { grid-column: 1 / -1; width: 100%; }
        .control output { grid-row: 1; grid-column: 2; }
        input[type=range] { accent-color: var(--accent); min-height: 1.6rem; }
        button, select, input:not([type=range]):not([type=checkbox]) { font: inherit; border: 1px solid var(--line); border-radius: .4rem; padding: .45rem .8rem; background: var(--card); color: var(--fg); min-height: 2.4rem; }
        button { cursor: pointer; }
        button:disabled { cursor: not-allowed; opacity: .5; }
        button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
        button.danger, button.deny { border-color: var(--bad); color: var(--bad); }
        button.switch { align-self: flex-start; min-width: 4.5rem; }
        button.switch.on { background: var(--on); border-color: var(--on); color: #1d232b; font-weight: 600; }
        .buttons, .row, .actions { display: flex; flex-wrap: wrap; gap: .4rem .6rem; align-items: center; }
        form label { display: block; margin-bottom: .8rem; }
        form input { display: block; width: 100%; margin-top: .25rem; }
        .check { display: inline-flex; gap: .3rem; align-items: center; }
        .pill { font-size: .75rem; border-radius: 1rem; padding: .05rem .55rem; border: 1px solid currentColor; white-space: nowrap; font-weight: 500; }
        .pill.online { color: var(--ok); }
        .pill.offline, .pill.pairing_needed { color: var(--bad); }
        .error { color: var(--bad); }
        .table { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; font-size: .9rem; }
        th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { color: var(--muted); font-weight: 600; }
        code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85em; overflow-wrap: anywhere; }
        code.code { font-size: 1.1rem; font-weight: 700; letter-spacing: .05em; }
        pre { background: var(--bg); padding: .6rem; border-radius: .4rem; overflow-x: auto; }
        dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
        dt { color: var(--muted); }
        dd { margin: 0; }
        .log { list-style: none; padding: 0; margin: 0; }
        .log li { padding: .25rem 0; border-bottom: 1px solid var(--line); }
        .log time { color: var(--muted); font-size: .85rem; }
        .toast { position: fixed; bottom: 1rem; left: 50%; transform: translateX(-50%); background: var(--fg); color: var(--bg); padding: .6rem 1rem; border-radius: .5rem; max-width: 90vw; z-index: 3; }
        .toast.error { background: var(--bad); color: #fff; }
        #health { display: grid; grid-template-columns: repeat(auto-fill, minmax(20rem, 1fr)); gap: 0 1rem; }
        #health[hidden], #home[hidden], #pairing[hidden], [hidden] { display: none !important; }
        @media (max-width: 40rem) {
          .top { position: static; padding: .5rem .6rem; }
          nav { flex-basis: 100%; gap: .25rem .8rem; }
          nav .who { margin-left: auto; }
          main { padding: .6rem; }
          .cards { grid-template-columns: 1fr; }
        }

        """#
}
