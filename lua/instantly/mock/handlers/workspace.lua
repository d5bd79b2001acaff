--- Bespoke handlers (workspace).
return function(H, common)
  local _ = H, common
end
