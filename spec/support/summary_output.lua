-- summary_output.lua - busted output handler: the usual terminal output,
-- then one plain closing line "N passed, N failed, N skipped" that CI and
-- people can read without knowing busted's format. Errors count as failed.
return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.utfTerminal"(options)

  busted.subscribe({ "suite", "end" }, function()
    local failed = handler.failuresCount + handler.errorsCount
    io.write(string.format("\nbusted: %d passed, %d failed, %d skipped\n",
      handler.successesCount, failed, handler.pendingsCount))
    io.flush()
    return nil, true
  end)

  return handler
end
