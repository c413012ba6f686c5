// The model-directory sandbox.
#include "engine/model_path.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace infer;

class model_path : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/redis-infer-path-XXXXXX";
        root = mkdtemp(tmpl);
        dir = root + "/models";
        mkdir(dir.c_str(), 0755);
        mkdir((dir + "/sub").c_str(), 0755);
        std::ofstream(dir + "/m.gguf") << "x";
        std::ofstream(dir + "/sub/n.gguf") << "x";
        std::ofstream(root + "/outside.gguf") << "x";
        symlink((root + "/outside.gguf").c_str(), (dir + "/link-out.gguf").c_str());
        symlink((dir + "/m.gguf").c_str(), (dir + "/link-in.gguf").c_str());
        mkfifo((dir + "/fifo.gguf").c_str(), 0644);
    }
    void TearDown() override { (void) !system(("rm -rf '" + root + "'").c_str()); }
    std::string root, dir;
};

TEST_F(model_path, accepts_files_inside) {
    EXPECT_EQ(model_path_resolve(dir, "m.gguf"), dir + "/m.gguf");
    EXPECT_EQ(model_path_resolve(dir, "sub/n.gguf"), dir + "/sub/n.gguf");
    EXPECT_EQ(model_path_resolve(dir, "sub/../m.gguf"), dir + "/m.gguf");
    EXPECT_EQ(model_path_resolve(dir, dir + "/m.gguf"), dir + "/m.gguf");
    EXPECT_EQ(model_path_resolve(dir, "link-in.gguf"), dir + "/m.gguf");
}

TEST_F(model_path, refuses_everything_else) {
    for (const std::string p : {"../outside.gguf", "sub/../../outside.gguf", "link-out.gguf", "fifo.gguf", "sub", ".",
                                "", "missing.gguf", "/etc/passwd", "/dev/zero", "/proc/self/mem"}) {
        EXPECT_FALSE(model_path_resolve(dir, p).has_value()) << p;
    }
    EXPECT_FALSE(model_path_resolve(root + "/outside.gguf", "x").has_value());  // dir is a file
    EXPECT_FALSE(model_path_resolve("", "m.gguf").has_value());
    EXPECT_FALSE(model_path_resolve(dir, std::string("m.gguf\0x", 8)).has_value());
}
