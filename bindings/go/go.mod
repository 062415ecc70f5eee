module gptq

go 1.19
