-- luacheck configuration: Lua 5.4, no globals written by our code.
std = "lua54"
max_line_length = 120
codes = true
exclude_files = { "build*/**", "lua/instantly/entities/**" }
files["spec/**/*.lua"] = { std = "+busted" }
files["**/*_spec.lua"] = { std = "+busted" }
