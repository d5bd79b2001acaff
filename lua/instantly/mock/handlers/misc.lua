--- Bespoke handlers (misc).
return function(H, common)
  local _ = H, common
end
