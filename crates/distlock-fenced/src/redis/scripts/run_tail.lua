
end)(caller_keys, caller_argv, ARGV[1])}
